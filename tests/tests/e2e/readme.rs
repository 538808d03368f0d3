//! What the README promises about files in the repository holds.

use std::path::Path;

fn repo(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)).unwrap()
}

#[test]
fn the_readme_config_example_is_the_example_file_and_it_loads() {
    let readme = repo("README.md");
    let marker =
        "A complete example, every field shown (`proxy/examples/split.yaml`):\n\n```yaml\n";
    let start = readme.find(marker).expect("the README shows the example") + marker.len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let file = repo("proxy/examples/split.yaml");
    let without_comment_lines: String = file
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        block.trim(),
        without_comment_lines.trim(),
        "README and proxy/examples/split.yaml differ"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proxy/examples/split.yaml");
    let cfg = sluice_proxy::config::ProxyConfig::load(&path).expect("the example loads");
    let table = sluice_proxy::RouteTable::build(
        cfg.table(),
        &sluice_proxy::BuildContext {
            previous: None,
            telemetry: &Default::default(),
        },
    );
    assert!(table.is_ok(), "{:?}", table.err());
}

#[test]
fn the_readme_opens_with_the_two_commands_and_ci_runs_the_second() {
    let readme = repo("README.md");
    let first = readme
        .find("cargo run --bin sluice -- demo")
        .expect("the demo command");
    let second = readme.find("./scripts/test.sh").expect("the test command");
    assert!(
        first < 1500 && second < 1500,
        "the two commands are not at the top"
    );
    assert!(repo(".ci/run").contains("scripts/test.sh"));
}
