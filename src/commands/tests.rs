//! Tests of what `reseal` lists in a policy folder (what a load reads) and of the stdin reader.

use super::*;
use crate::seal::Keyring;

/// A folder with `policy/policy.toml` (one value sealed under `old`) and `envoi.toml`,
/// which names the keys `new` then `old`: a reseal moves the value to `new`.
struct Resealable {
    dir: tempfile::TempDir,
    old: MasterKey,
    new: MasterKey,
    config: std::path::PathBuf,
}

impl Resealable {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let sealed = Self::keyring(&old).seal("db", b"pw-7f3a").unwrap();
        std::fs::create_dir(dir.path().join("policy")).unwrap();
        std::fs::write(
            dir.path().join("policy/policy.toml"),
            format!("[secrets.db]\nsealed = \"{sealed}\"\n\n[[grants]]\nproject = \"p\"\nenv = {{ DB = \"db\" }}\n"),
        )
        .unwrap();
        let config = dir.path().join("envoi.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nkind = \"toml\"\npath = \"policy\"\n\n[seal]\nkeys = [\"{}\", \"{}\"]\n",
                new.encode().as_str(),
                old.encode().as_str()
            ),
        )
        .unwrap();
        Self { dir, old, new, config }
    }

    fn keyring(key: &MasterKey) -> Keyring {
        Keyring::new(vec![MasterKey::parse(&key.encode()).unwrap()])
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join(relative)
    }
}

#[test]
fn a_value_read_from_standard_input_loses_one_line_ending_unless_raw() {
    for (input, raw, want) in [
        (&b"pw\n"[..], false, &b"pw"[..]),
        (b"pw\r\n", false, b"pw"),
        (b"pw\n\n", false, b"pw\n"),
        (b"pw\r", false, b"pw\r"),
        (b"pw", false, b"pw"),
        (b"\n", false, b""),
        (b"pw\n", true, b"pw\n"),
        (b"pw\r\n", true, b"pw\r\n"),
    ] {
        let got = read_value_from(input, raw).unwrap();
        assert_eq!(&got[..], want, "{input:?} (raw: {raw})");
    }
}

#[test]
fn reseal_passes_over_the_folder_entries_a_load_passes_over() {
    let ws = Resealable::new();
    // Emacs' lock file: a dangling symlink named like a policy file, but hidden.
    std::os::unix::fs::symlink("user@host.1234:1700000000", ws.path("policy/.#policy.toml")).unwrap();

    reseal(Some(&ws.config)).expect("reseal skips the lock file, as a load does");
    let text = std::fs::read_to_string(ws.path("policy/policy.toml")).unwrap();
    assert!(text.contains(&format!("envoi:v1:{}:", ws.new.id())), "resealed\n{text}");
    crate::policy::Loader::new(&Resealable::keyring(&ws.new))
        .load_path(&ws.path("policy"))
        .expect("the folder loads under the new key alone");
}

#[test]
fn reseal_refuses_the_folder_entries_a_load_refuses_in_the_same_words() {
    let ws = Resealable::new();
    std::os::unix::fs::symlink("gone.toml", ws.path("policy/broken.toml")).unwrap();
    let before = std::fs::read_to_string(ws.path("policy/policy.toml")).unwrap();

    let refused = reseal(Some(&ws.config))
        .expect_err("a dangling policy file is refused")
        .to_string();
    let load = crate::policy::Loader::new(&Resealable::keyring(&ws.old))
        .load_path(&ws.path("policy"))
        .expect_err("the load refuses it too");
    assert_eq!(refused, load.to_string());
    assert!(refused.contains("is a symlink to nothing (dangling)"), "{refused}");
    let after = std::fs::read_to_string(ws.path("policy/policy.toml")).unwrap();
    assert_eq!(before, after, "nothing rewritten");
}
