//! SPEC §2, the policy, seen through HTTP: who receives what, which grant wins, how
//! values and FILE attributes go on the wire; and the policies that must not load.

use std::path::Path;

mod broken;
mod conflicts;
mod selectors;
mod values;

/// Bytes that are not UTF-8, whose standard base64 uses both `+` and `/`.
const BLOB: &[u8] = &[0x00, 0xff, 0xfe, 0x80, b'k', 0xc3];
const BLOB_BASE64: &str = "AP/+gGvD";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("create the folder");
    std::fs::write(path, bytes).expect("write a test file");
}
