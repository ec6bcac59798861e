//! The README's walkthrough and simulator sections, run as a reader runs them: their `sh` blocks
//! are read from README.md at test time (not a copy) and run in order in one shell, in a fresh
//! directory, with `cargo run --release -- ARGS` resolving to the binary under test; the
//! answers the README shows are checked, `sim verify` → 0 divergent included. The history is
//! made small through the README's own `HISTORY` variable. Every process the shell starts is
//! in one process group, killed at the end whatever happened.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The README sections whose `sh` blocks run, by the start of their headings, in order.
const SECTIONS: [&str; 2] = ["## Walkthrough", "## Simulator, backfill and verify"];

/// The ports those blocks use: the walkthrough's node, the simulator's node, the simulator.
const PORTS: [u16; 3] = [8080, 8081, 12111];

/// Objects of history per simulated account (the README's `HISTORY`, 5,000 by default).
const HISTORY: usize = 300;

/// How long the blocks may take (the README's `--settle 120` included).
const DEADLINE: Duration = Duration::from_secs(300);

/// The `sh` blocks of the level-2 sections whose headings start with one of `sections`, in
/// the README's order; the other sections' blocks (the two commands, configuration examples
/// with placeholders) are not run.
fn blocks(readme: &str, sections: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in readme.lines() {
        if let Some(b) = block.as_mut() {
            if line.trim_end() == "```" {
                out.push(block.take().unwrap_or_default());
            } else {
                b.push_str(line);
                b.push('\n');
            }
            continue;
        }
        if line.starts_with("## ") {
            in_section = sections.iter().any(|s| line.starts_with(s));
        } else if in_section && line.trim_end() == "```sh" {
            block = Some(String::new());
        }
    }
    out
}

/// The shell's process group, killed (SIGKILL) when dropped: the nodes and the simulator the
/// blocks start in the background are in it, so they end even when the test fails.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The last `n` lines of `text`, for failure messages.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The lines of `stdout` that are JSON objects with `key` (the answers curl printed; the
/// nodes' log lines are not JSON).
fn json_with(stdout: &str, key: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get(key).is_some())
        .collect()
}

#[test]
fn readme_sections_run_top_to_bottom_in_one_shell() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = blocks(&readme, &SECTIONS);
    assert_eq!(
        blocks.len(),
        2,
        "one sh block each in the sections {SECTIONS:?}"
    );
    for port in PORTS {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: the README's blocks listen there, stop what holds it"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // A `cargo` first on PATH: `cargo run --release -- ARGS` execs the binary under test (so
    // `$!` of a backgrounded one is billsync's own pid, as with cargo, which execs too).
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\n\
             if [ \"$1 $2 $3\" != 'run --release --' ]; then\n\
             echo \"readme test: unexpected cargo call: cargo $*\" >&2; exit 2\n\
             fi\n\
             shift 3\n\
             exec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_billsync")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The blocks as written, in order, in one shell that stops at the first failing command.
    let script = dir.path().join("readme.sh");
    std::fs::write(&script, format!("set -ex\n{}", blocks.join("\n"))).unwrap();

    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("sh");
    command
        .arg(&script)
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("LANG", "C.UTF-8")
        .env("HISTORY", HISTORY.to_string())
        // Warnings only: the nodes log to the same standard output as curl's answers.
        .env("BILLSYNC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // Its own process group (pgid = its pid): every process it starts stays in it (no job
    // control in a script), so one kill ends them all.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let start = Instant::now();
    let mut group = Group(command.spawn().expect("sh runs"));
    let status = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = start.elapsed();
    drop(group);
    let stdout = read(&stdout_path);
    let stderr = read(&stderr_path);
    let context = format!(
        "after {took:?}\n--- stdout (last 60 lines) ---\n{}\n--- stderr (last 60 lines) ---\n{}",
        tail(&stdout, 60),
        tail(&stderr, 60)
    );
    let status =
        status.unwrap_or_else(|| panic!("the blocks did not end in {DEADLINE:?} {context}"));
    assert!(status.success(), "the blocks failed: {status} {context}");

    // Walkthrough 1: registered, 201, the id carried into the next commands.
    let registered = stdout
        .lines()
        .find(|l| l.contains("\"connection_id\":\"conn_"))
        .unwrap_or_else(|| panic!("no registration answer {context}"));
    assert!(registered.ends_with("} 201"), "{registered} {context}");
    let conn = registered
        .split("\"connection_id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    assert!(
        stderr.contains(&format!("/webhooks/stripe/{conn} ")),
        "the webhook went to the registered connection {conn} {context}"
    );
    // 2: stored, then the same event a duplicate, both 200.
    let first = stdout
        .find("{\"received\":true,\"duplicate\":false} 200")
        .unwrap_or_else(|| panic!("no first webhook answer {context}"));
    let again = stdout
        .find("{\"received\":true,\"duplicate\":true} 200")
        .unwrap_or_else(|| panic!("no duplicate answer {context}"));
    assert!(first < again, "{context}");
    // 3: the customer, its one version, one change.
    let customers = json_with(&stdout, "reconciliation_status");
    assert_eq!(customers.len(), 1, "{context}");
    assert_eq!(customers[0]["id"], "stripe:cus_1");
    assert_eq!(customers[0]["version"], 1);
    assert_eq!(customers[0]["data"]["email"], "ada@example.com");
    assert_eq!(customers[0]["data"]["name"], "Ada");
    let versions: Vec<Value> = json_with(&stdout, "data")
        .into_iter()
        .filter(|v| v["data"][0].get("source").is_some())
        .collect();
    assert_eq!(versions.len(), 1, "one versions answer {context}");
    assert_eq!(
        versions[0]["data"].as_array().map(Vec::len),
        Some(1),
        "the duplicate made no version: {}",
        versions[0]
    );
    let changes = json_with(&stdout, "next_after");
    assert_eq!(changes.len(), 1, "one change feed answer {context}");
    assert_eq!(changes[0]["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(changes[0]["data"][0]["id"], "stripe:cus_1");

    // The simulator section: both accounts registered, each backfilled.
    let accounts = json_with(&stdout, "registered");
    assert_eq!(accounts.len(), 1, "{context}");
    assert_eq!(accounts[0]["registered"], true);
    let ids: Vec<String> = accounts[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["connection_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{context}");
    for id in &ids {
        assert!(
            stdout.contains(&format!("backfill of {id} done: ")),
            "{id} was backfilled {context}"
        );
    }
    // Settled, then every object equal to the truth.
    assert!(stderr.contains("settled after "), "{context}");
    assert!(!stderr.contains("not settled"), "{context}");
    let summary = stdout
        .lines()
        .find(|l| l.contains(" divergent, "))
        .unwrap_or_else(|| panic!("no verify summary {context}"));
    let objects: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(objects >= 2 * HISTORY, "{summary}");
    assert!(
        summary.contains(" objects, 0 divergent, 100.000% converged; send→queryable P50 "),
        "{summary}"
    );
}
