//! `envoi run` through the built binary (SPEC §8): files with each mode and owner policy
//! (the tests run as root, so owners are real), `--root` escapes, failing closed, the
//! command's variables and exit status. Against a real `envoi serve`, or a stand-in
//! for the forms envoi never sends.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{free_port, jwt, FakeServer, Ran, Server, Workspace};

/// The files of `shop/service/web`, one per policy of the protocol.
const POLICY: &str = r#"
[secrets.db_password]
value = "correct horse battery"

[[grants]]
name = "web"
project = "shop"
type = "service"
id = "web"
env = { DB_PASSWORD = "db_password", GREETING = { value = "hello from envoi" } }

[[grants.files]]
path = "/etc/shop/default"
value = "no permissions given"

[[grants.files]]
path = "/etc/shop/named"
value = "owner and group by name"
mode = "0440"
owner = "daemon"
group = "bin"

[[grants.files]]
path = "/etc/shop/ids"
value = "owner and group by id"
mode = "0400"
owner = "2"
group = "1"

[[grants.files]]
path = "/etc/shop/kept"
value = "new contents, old attributes"
permissions = { policy = "KeepOrSet", mode = "0640" }
owner = { policy = "KeepOrSetExplicit", value = "daemon" }
group = { policy = "KeepOrSetExplicit", value = "daemon" }

[[grants.files]]
path = "/etc/shop/fresh"
value = "new file, so set"
permissions = { policy = "KeepOrSet", mode = "0640" }
owner = { policy = "KeepOrSetExplicit", value = "daemon" }
group = { policy = "KeepOrSetExplicit", value = "daemon" }

[[grants.files]]
path = "/etc/shop/inherited"
value = "as the command runs"
mode = "0644"
owner = { policy = "AlwaysSetInherited" }
group = { policy = "AlwaysSetInherited" }

[[grants.files]]
path = "/etc/shop/kept-inherited"
value = "owner left alone"
owner = { policy = "KeepOrSetInherited" }
group = { policy = "KeepOrSetInherited" }

[[grants.files]]
path = "/etc/shop/blob.bin"
file = "blob.bin"
"#;

const BLOB: &[u8] = &[0xff, 0xfe, 0x00, b'\'', b'\n', 0x80];

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("blob.bin", BLOB);
    ws.write("policy.toml", POLICY);
    ws.config("policy.toml", &[]);
    ws.write("token", jwt::token("shop", "service", "web"));
    ws
}

fn serve(ws: &Workspace) -> Server {
    Server::start(ws.path(), &["serve", "--config", "envoi.toml"], &[])
}

/// `envoi run --url URL --token-file token ARGS`.
fn run(ws: &Workspace, url: &str, args: &[&str]) -> Ran {
    Ran::of(
        ws.envoi(["run", "--url", url, "--token-file", "token", "--retry-for", "1s"])
            .args(args),
    )
}

/// (mode, uid, gid) of a file.
fn attributes(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

/// Everything in `dir`, recursively, as paths relative to it: to show that no temporary
/// file was left behind.
fn listing(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn run_writes_every_file_with_its_mode_and_owner_policy_then_runs_the_command_with_the_variables() {
    let ws = workspace();
    let server = serve(&ws);
    // Files that are there before: KeepOrSet keeps their mode and owners, AlwaysSet does not.
    let kept = ws.write("root/etc/shop/kept", "old");
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(&kept, Some(2), Some(2)).unwrap();
    let inherited = ws.write("root/etc/shop/inherited", "old");
    std::os::unix::fs::chown(&inherited, Some(1), Some(1)).unwrap();
    let kept_inherited = ws.write("root/etc/shop/kept-inherited", "old");
    std::os::unix::fs::chown(&kept_inherited, Some(2), Some(1)).unwrap();

    let ran = run(
        &ws,
        &server.base,
        &[
            "--root",
            "root",
            "--",
            "sh",
            "-c",
            r#"printf '%s|%s' "$GREETING" "$DB_PASSWORD" > marker"#,
        ],
    )
    .success();
    ran.never_shows("correct horse");
    assert_eq!(ws.read("marker"), "hello from envoi|correct horse battery");

    let root = ws.join("root/etc/shop");
    let cases: &[(&str, &str, (u32, u32, u32))] = &[
        ("default", "no permissions given", (0o600, 0, 0)),
        ("named", "owner and group by name", (0o440, 1, 2)),
        ("ids", "owner and group by id", (0o400, 2, 1)),
        ("kept", "new contents, old attributes", (0o604, 2, 2)),
        ("fresh", "new file, so set", (0o640, 1, 1)),
        ("inherited", "as the command runs", (0o644, 0, 0)),
        ("kept-inherited", "owner left alone", (0o600, 2, 1)),
    ];
    for (name, contents, expected) in cases {
        let path = root.join(name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), *contents, "{name}");
        assert_eq!(attributes(&path), *expected, "{name}: (mode, uid, gid)");
    }
    assert_eq!(std::fs::read(root.join("blob.bin")).unwrap(), BLOB, "base64 decoded");
    assert!(
        !listing(&ws.join("root")).iter().any(|p| p.contains(".tmp")),
        "{:?}",
        listing(&ws.join("root"))
    );
}

#[test]
fn run_accepts_the_forms_of_the_protocol_that_envoi_does_not_send() {
    let ws = workspace();
    let body = r#"{"secrets":[
        {"type":"ENV","key":"MODE","value":"numeric"},
        {"type":"FILE","path":"/numeric","data":"aGVsbG8=","encoding":"base64",
         "permissions":{"policy":"AlwaysSet","mode":288},
         "owner":{"policy":"AlwaysSetExplicit","value":2},
         "group":{"policy":"AlwaysSetExplicit","value":"daemon"}},
        {"type":"FILE","path":"relative/file","data":"r","future-field":1}
    ]}"#;
    let fake = FakeServer::answering(200, body);
    run(
        &ws,
        &fake.url,
        &["--root", "root", "--", "sh", "-c", r#"printf %s "$MODE" > marker"#],
    )
    .success();
    assert_eq!(ws.read("marker"), "numeric");
    assert_eq!(ws.read("root/numeric"), "hello");
    assert_eq!(attributes(&ws.join("root/numeric")), (0o440, 2, 1), "288 is 0440");
    assert_eq!(ws.read("root/relative/file"), "r");
}

#[test]
fn a_path_that_leads_out_of_root_is_refused_and_named_and_nothing_starts() {
    let ws = workspace();
    std::fs::create_dir_all(ws.join("root")).unwrap();
    std::fs::create_dir_all(ws.join("outside")).unwrap();
    std::os::unix::fs::symlink(ws.join("outside"), ws.join("root/link")).unwrap();
    std::os::unix::fs::symlink(ws.join("outside/file"), ws.join("root/file-link")).unwrap();
    let cases = [
        ("/../outside/climbed", "..", "/../outside/climbed"),
        ("/a/../../outside/climbed", "..", "/a/../../outside/climbed"),
        ("/link/through", "symbolic link", "root/link"),
        ("/file-link", "symbolic link", "root/file-link"),
    ];
    for (path, why, named) in cases {
        let body = format!(
            r#"{{"secrets":[{{"type":"FILE","path":"/fine","data":"x"}},{{"type":"FILE","path":"{path}","data":"x"}}]}}"#
        );
        let fake = FakeServer::answering(200, body);
        let ran = run(&ws, &fake.url, &["--root", "root", "--", "touch", "marker"]).failure();
        ran.stderr_names(why).stderr_names(named).stderr_names("--root");
        assert_eq!(ran.code, Some(1), "{path}\n{ran}");
        assert!(!ws.join("marker").exists(), "{path}: the command did not start");
        assert!(!ws.join("root/fine").exists(), "{path}: no file was written");
        assert_eq!(listing(&ws.join("outside")), Vec::<String>::new(), "{path}");
    }
}

#[test]
fn a_failure_before_the_command_starts_it_not_and_leaves_no_file() {
    let ws = workspace();
    let fine = r#"{"type":"FILE","path":"/fine","data":"x"}"#;
    let cases = [
        (
            format!(
                r#"{{"secrets":[{fine},{{"type":"FILE","path":"/who","data":"x","owner":{{"policy":"AlwaysSetExplicit","value":"no-such-user"}}}}]}}"#
            ),
            "no-such-user",
        ),
        (
            format!(
                r#"{{"secrets":[{fine},{{"type":"FILE","path":"/grp","data":"x","group":{{"policy":"KeepOrSetExplicit","value":"no-such-group"}}}}]}}"#
            ),
            "no-such-group",
        ),
        (
            format!(r#"{{"secrets":[{fine},{{"type":"FILE","path":"/b64","data":"!!","encoding":"base64"}}]}}"#),
            "/b64",
        ),
        (r#"{"secrets":[{"type":"SECRET"}]}"#.to_owned(), "SECRET"),
        (
            format!(r#"{{"secrets":[{{"type":"ENV","key":"NUL_VALUE","value":"a\u0000b"}},{fine}]}}"#),
            "NUL_VALUE",
        ),
        (
            format!(r#"{{"secrets":[{{"type":"ENV","key":"A=B","value":"x"}},{fine}]}}"#),
            "A=B",
        ),
    ];
    for (body, named) in cases {
        let fake = FakeServer::answering(200, body);
        let ran = run(&ws, &fake.url, &["--root", "root", "--", "touch", "marker"]).failure();
        ran.stderr_names(named);
        assert_eq!(ran.code, Some(1), "{named}\n{ran}");
        assert!(!ws.join("marker").exists(), "{named}: the command did not start");
        assert_eq!(
            listing(&ws.join("root")),
            Vec::<String>::new(),
            "{named}: no file, no temporary"
        );
    }

    // The server down: retried for --retry-for, then nothing starts.
    let down = format!("http://127.0.0.1:{}/", free_port());
    let ran = run(&ws, &down, &["--", "touch", "marker"]).failure();
    ran.stderr_names("127.0.0.1").stderr_names("--retry-for");
    assert!(!ws.join("marker").exists());
    // A command that does not exist is named.
    let fake = FakeServer::answering(200, r#"{"secrets":[]}"#);
    run(&ws, &fake.url, &["--", "no-such-command-here"])
        .failure()
        .stderr_names("no-such-command-here");
}

#[test]
fn a_401_is_not_retried_and_the_command_is_not_started() {
    let ws = workspace();
    let fake = FakeServer::answering(401, "{}");
    let started = Instant::now();
    let ran = Ran::of(ws.envoi([
        "run",
        "--url",
        fake.url.as_str(),
        "--token-file",
        "token",
        "--retry-for",
        "20s",
        "--",
        "touch",
        "marker",
    ]))
    .failure();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    ran.stderr_names("401").never_shows(&ws.read("token"));
    assert_eq!(fake.requests(), 1, "asked once");
    assert!(!ws.join("marker").exists());
}

#[test]
fn run_execs_the_command_which_keeps_its_exit_status_and_signal() {
    let ws = workspace();
    let fake = FakeServer::answering(200, r#"{"secrets":[]}"#);
    let ran = run(&ws, &fake.url, &["--", "sh", "-c", "exit 7"]);
    assert_eq!(ran.code, Some(7), "{ran}");
    // exec: the command is the process, so `$$` is the pid envoi was started with.
    let out = ws
        .envoi(["run", "--url", fake.url.as_str(), "--token-file", "token", "--"])
        .args(["sh", "-c", "kill -TERM $$"])
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(15),
        "{out:?}"
    );
    let usage = Ran::of(ws.envoi(["run", "--url", fake.url.as_str(), "--token-file", "token"]));
    assert_eq!(usage.code, Some(2), "no COMMAND is a usage error\n{usage}");
}

#[test]
fn the_variable_that_held_the_token_is_not_passed_to_the_command() {
    let ws = workspace();
    let fake = FakeServer::answering(200, r#"{"secrets":[{"type":"ENV","key":"KEPT","value":"yes"}]}"#);
    Ran::of(
        ws.envoi(["run", "--url", fake.url.as_str(), "--token-env", "MY_TOKEN", "--"])
            .args(["sh", "-c", r#"printf '%s|%s' "${MY_TOKEN-unset}" "$KEPT" > marker"#])
            .env("MY_TOKEN", ws.read("token")),
    )
    .success();
    assert_eq!(ws.read("marker"), "unset|yes");
}

#[test]
fn a_server_that_comes_up_late_is_retried_and_then_the_command_runs() {
    let ws = workspace();
    let port = free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let url = format!("http://127.0.0.1:{port}/");
    std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            Ran::of(
                ws.envoi([
                    "run",
                    "--url",
                    url.as_str(),
                    "--token-file",
                    "token",
                    "--retry-for",
                    "15s",
                ])
                .args(["--root", "root", "--", "sh", "-c", r#"printf %s "$GREETING" > marker"#]),
            )
        });
        // Started only once envoi has tried (and failed) at least once.
        std::thread::sleep(Duration::from_millis(500));
        assert!(!ws.join("marker").exists());
        let _server = Server::launch(ws.path())
            .args(["serve", "--config", "envoi.toml"])
            .env("ENVOI__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .ready_when(move |_| {
                crate::support::raw_http::get(address, "/healthz", None, Duration::from_secs(2))
                    .is_ok_and(|answer| answer.status == 200)
            })
            .start();
        running.join().expect("the run thread").success();
    });
    assert_eq!(ws.read("marker"), "hello from envoi");
}
