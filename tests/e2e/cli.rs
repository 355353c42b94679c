//! The command line: the default run with SQL over psql and `shardcast sql`, Ctrl-C, config errors, and
//! replaying a real trace file.

use std::process::Stdio;
use std::time::Duration;

use crate::fixtures::{eventually, free_port, output_ok, psql, read_topic, shardcast, Process};

#[test]
fn default_run_serves_sql_and_stops_cleanly_on_ctrl_c() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut job = Process {
        child: shardcast()
            .args(["run", "--sql-listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let lines = eventually(Duration::from_secs(60), "assignments over psql", || {
        psql(
            port,
            "SELECT customer, partition FROM assignments ORDER BY 1 LIMIT 5",
        )
        .ok()
        .filter(|o| o.lines().count() == 5)
    });
    for line in lines.lines() {
        let (customer, partition) = line.split_once('|').unwrap();
        assert!(customer.starts_with('c'), "{line}");
        assert!(
            ["us-east", "eu-west", "ap-south"].contains(&partition),
            "{line}"
        );
    }
    // `shardcast sql` reads the same job.
    let out = output_ok(shardcast().args([
        "sql",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "SELECT count(*) AS n FROM key_load",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains('n'), "{text}");
    let n: u64 = text
        .lines()
        .filter_map(|l| l.trim().trim_matches('|').trim().parse().ok())
        .next()
        .unwrap_or(0);
    assert!(n > 100, "key_load should hold many keys:\n{text}");

    // Ctrl-C: SIGINT stops the job cleanly with a summary.
    let stderr = job.interrupt();
    assert!(stderr.contains("stopped at epoch"), "{stderr}");
    // The server-less sink of the default pipeline: the changelog as JSON lines.
    let changelog = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(changelog.lines().next().unwrap()).unwrap();
    for field in ["table", "key", "version", "diff", "row"] {
        assert!(
            first.get(field).is_some(),
            "changelog line lacks {field}: {first}"
        );
    }
}

#[test]
fn bad_config_is_rejected_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[pipeline.default]\ntick = \"1s\"\nwindow = \"10s\"\n\n[pipeline.default.partition]\nstatic_wieght = 1.0\n").unwrap();
    let out = shardcast()
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:6:") && stderr.contains("static_wieght"),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "[pipeline.default]\ntick = \"1s\"\nwindow = \"2500ms\"\n",
    )
    .unwrap();
    let out = shardcast()
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("bad.toml:3:")
            && stderr.contains("multiple of tick"),
        "{stderr}"
    );

    let out = shardcast()
        .args(["run", "--source", "ftp://nowhere"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("unknown source"),
        "{stderr}"
    );
}

#[test]
fn replays_the_nasa_trace_to_a_changelog_file() {
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
    );
    assert!(
        std::path::Path::new(trace).is_file(),
        "the NASA trace is missing: the shared/ folder with traces/ must sit beside the checkout"
    );
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("decisions.jsonl");
    let config = format!(
        "[pipeline.nasa]\nsource = \"file:{trace}\"\ntick = \"1m\"\nwindow = \"30m\"\nworkers = 2\n\n\
         [pipeline.nasa.sinks]\njsonl = \"{}\"\n\n[pipeline.nasa.sql]\nlisten = \"off\"\n",
        out_path.display()
    );
    let config_path = dir.path().join("pipelines.toml");
    std::fs::write(&config_path, config).unwrap();
    let out = output_ok(shardcast().args([
        "run",
        "--config",
        config_path.to_str().unwrap(),
        "--pipeline",
        "nasa",
        "--exit-at-end",
        "--quiet",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("after 30969 events"),
        "every row of the trace is an event:\n{stderr}"
    );
    let text = std::fs::read_to_string(&out_path).unwrap();
    let mut versions = Vec::new();
    let mut assigned = std::collections::BTreeMap::new();
    for line in text.lines() {
        let change: serde_json::Value = serde_json::from_str(line).unwrap();
        versions.push(change["version"].as_u64().unwrap());
        if change["table"] == "assignments" {
            let key = change["key"].as_str().unwrap().to_string();
            *assigned.entry(key).or_insert(0i64) += change["diff"].as_i64().unwrap();
        }
    }
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "versions must not go backwards"
    );
    assert!(
        assigned.values().all(|n| *n == 0 || *n == 1),
        "each customer has at most one live assignment"
    );
    assert!(
        assigned.values().filter(|n| **n == 1).count() > 100,
        "hosts in the last window get partitions"
    );
}

/// Every message of a topic, decoded as events.
fn read_events(broker: &str, topic: &str) -> Vec<shardcast_sources::Event> {
    read_topic(broker, topic)
        .iter()
        .map(|(partition, payload)| {
            shardcast_sources::decode_json(&format!("{topic}[{partition}]"), payload).unwrap()
        })
        .collect()
}

#[test]
fn produce_sends_a_trace_and_the_generator_to_a_topic() {
    let broker = crate::fixtures::Broker::start();
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
    );
    let topic = crate::fixtures::unique("trace");
    output_ok(shardcast().args([
        "produce",
        "--to",
        &format!("kafka://{}/{topic}", broker.addr),
        "--trace",
        trace,
        "--limit",
        "300",
    ]));
    let events = read_events(&broker.addr, &topic);
    assert_eq!(events.len(), 300);
    // The first row of the trace, with its timestamp converted from seconds to milliseconds.
    let first = events.iter().min_by_key(|e| e.ts).unwrap();
    assert_eq!(
        (first.ts, first.key.as_str()),
        (807_256_800_000, "/images/launch-logo.gif")
    );

    let topic = crate::fixtures::unique("generated");
    output_ok(shardcast().args([
        "produce",
        "--to",
        &format!("kafka://{}/{topic}", broker.addr),
        "--generator",
        "--limit",
        "200",
    ]));
    let events = read_events(&broker.addr, &topic);
    assert_eq!(events.len(), 200);
    assert!(events
        .iter()
        .all(|e| e.attrs.contains_key("home") && !e.client.is_empty()));
}
