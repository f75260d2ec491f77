//! The README's tool table is the one `devgate tools --all --format md` prints.

mod common;

use std::process::Command;

#[test]
fn readme_tool_table_is_current() {
    let output = Command::new(common::BIN)
        .args(["tools", "--all", "--format", "md"])
        .env_remove("DEVGATE_CONFIG")
        .output()
        .expect("devgate tools runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- tools:start -->\n").expect("start marker")
        + "<!-- tools:start -->\n".len();
    let end = readme.find("<!-- tools:end -->").expect("end marker");
    if readme[start..end] != generated {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"), updated).unwrap();
        } else {
            panic!(
                "README.md's tool table is stale: run `UPDATE_README=1 cargo test --test readme`"
            );
        }
    }
}
