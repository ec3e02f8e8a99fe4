//! `ringiot-bench report FILE.jsonl`: folds repeated result lines into one markdown table per
//! scenario, quoting the median of each figure over the runs (this machine's speed drifts, so
//! single runs mislead) and, where a baseline ran, the ratios of the medians.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::ResultLine;

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn median_of(lines: &[&ResultLine], field: impl Fn(&ResultLine) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = lines.iter().filter_map(|line| field(line)).collect();
    (!values.is_empty()).then(|| median(&mut values))
}

fn cores(line: &ResultLine, cpu_s: Option<f64>) -> Option<f64> {
    cpu_s.map(|cpu| cpu / line.duration_s.max(1e-9))
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".to_owned(), |value| format!("{value:.decimals$}"))
}

/// (devices, clients, loop mode, rate, transport) identifies comparable command-rtt runs.
type RunKey = (u64, u64, String, String, String);
/// Target label → its runs, ringiot rows first.
type RunsByTarget<'a> = BTreeMap<String, Vec<&'a ResultLine>>;

/// The target as the tables name it: ringiot with its shard count when known.
pub fn target_label(line: &ResultLine) -> String {
    match line.engine_shards {
        Some(1) if line.target == "ringiot" => "ringiot (1 shard)".to_owned(),
        Some(shards) if line.target == "ringiot" => format!("ringiot ({shards} shards)"),
        _ => line.target.clone(),
    }
}

/// CPU the target spent per operation, µs (the per-core cost, whatever the core count).
pub fn cpu_us_per_op(line: &ResultLine) -> Option<f64> {
    (line.ops > 0).then_some(line.target_cpu_s? * 1e6 / line.ops as f64)
}

fn run_key(line: &ResultLine) -> RunKey {
    let rate = line.rate_per_s.map_or(String::new(), |rate| format!("{rate}"));
    (line.devices, line.clients, line.loop_mode.clone().unwrap_or_default(), rate, line.transport_label())
}

/// Target names with ringiot's first, then the baselines.
fn ringiot_first<'a>(targets: &'a RunsByTarget<'_>) -> Vec<&'a String> {
    let mut names: Vec<&String> = targets.keys().collect();
    names.sort_by_key(|name| (!name.starts_with("ringiot"), name.as_str()));
    names
}

/// "×a/b" of two medians; "–" when either is missing.
fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> String {
    match (numerator, denominator) {
        (Some(numerator), Some(denominator)) => format!("×{:.2}", numerator / denominator.max(1e-9)),
        _ => "–".to_owned(),
    }
}

/// Throughput, p99 and CPU per call of `runs` against `reference`, as ratios of medians.
fn ratios(runs: &[&ResultLine], reference: &[&ResultLine]) -> String {
    let throughput = |runs: &[&ResultLine]| median_of(runs, |l| Some(l.throughput_per_s));
    let p99 = |runs: &[&ResultLine]| median_of(runs, |l| Some(l.p99_us.max(1) as f64));
    format!(
        "{} | {} | {}",
        ratio(throughput(runs), throughput(reference)),
        ratio(p99(runs), p99(reference)),
        ratio(median_of(runs, cpu_us_per_op), median_of(reference, cpu_us_per_op))
    )
}

/// The markdown report of all `lines`.
pub fn markdown(lines: &[ResultLine]) -> String {
    let mut out = String::new();
    let of = |scenario: &'static str| lines.iter().filter(move |line| line.scenario == scenario);
    command_rtt_tables(&mut out, of("command-rtt"));
    connect_table(&mut out, of("connect"));
    messages_table(&mut out, of("messages-accept").chain(of("messages-deliver")));
    batch_table(&mut out, of("batch"));
    gateway_tables(&mut out, of("gateway"));
    out
}

fn command_rtt_tables<'a>(out: &mut String, lines: impl Iterator<Item = &'a ResultLine>) {
    let mut command_runs: BTreeMap<RunKey, RunsByTarget<'a>> = BTreeMap::new();
    for line in lines {
        command_runs.entry(run_key(line)).or_default().entry(target_label(line)).or_default().push(line);
    }
    if command_runs.is_empty() {
        return;
    }
    out.push_str("### command-rtt (medians over runs)\n\n");
    out.push_str(
        "| devices | clients | loop | transport | target | runs | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs | errors | target CPU (cores) | target CPU µs per call | bench CPU (cores) | target RSS MiB |\n",
    );
    out.push_str("|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((devices, clients, loop_mode, rate, transport), targets) in &command_runs {
        let loop_label = if rate.is_empty() { loop_mode.clone() } else { format!("{loop_mode} {rate}/s") };
        for name in ringiot_first(targets) {
            let runs = &targets[name];
            let _ = writeln!(
                out,
                "| {devices} | {clients} | {loop_label} | {transport} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                runs.len(),
                show(median_of(runs, |l| Some(l.throughput_per_s)), 0),
                show(median_of(runs, |l| Some(l.p50_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p90_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p99_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p999_us as f64)), 0),
                runs.iter().map(|l| l.errors).sum::<u64>(),
                show(median_of(runs, |l| cores(l, l.target_cpu_s)), 2),
                show(median_of(runs, cpu_us_per_op), 1),
                show(median_of(runs, |l| cores(l, l.bench_cpu_s)), 2),
                show(median_of(runs, |l| l.engine_rss_bytes.map(|b| b as f64 / 1048576.0)), 1),
            );
        }
    }
    // Every ringiot row against the Mosquitto row of the same shape and transport.
    let mut against_mosquitto = Vec::new();
    for ((devices, clients, _, _, transport), targets) in &command_runs {
        let Some(baseline) = targets.get("mosquitto") else { continue };
        for (name, runs) in targets.iter().filter(|(name, _)| name.starts_with("ringiot")) {
            let ratios = ratios(runs, baseline);
            against_mosquitto.push(format!("| {devices} | {clients} | {transport} | {name} | {ratios} |"));
        }
    }
    if !against_mosquitto.is_empty() {
        out.push_str(
            "\n| devices | clients | transport | target | throughput / mosquitto | p99 / mosquitto | CPU per call / mosquitto |\n",
        );
        out.push_str("|---:|---:|---|---|---:|---:|---:|\n");
        for row in against_mosquitto {
            out.push_str(&row);
            out.push('\n');
        }
    }
    // Every TLS row against the TCP row of the same target and shape: what TLS costs.
    let mut against_tcp = Vec::new();
    for ((devices, clients, loop_mode, rate, transport), targets) in &command_runs {
        let tcp_key = (*devices, *clients, loop_mode.clone(), rate.clone(), "tcp".to_owned());
        let Some(tcp_targets) = command_runs.get(&tcp_key).filter(|_| transport != "tcp") else { continue };
        for name in ringiot_first(targets) {
            let Some(tcp_runs) = tcp_targets.get(name) else { continue };
            let ratios = ratios(&targets[name], tcp_runs);
            against_tcp.push(format!("| {devices} | {clients} | {transport} | {name} | {ratios} |"));
        }
    }
    if !against_tcp.is_empty() {
        out.push_str("\n| devices | clients | transport | target | throughput / tcp | p99 / tcp | CPU per call / tcp |\n");
        out.push_str("|---:|---:|---|---|---:|---:|---:|\n");
        for row in against_tcp {
            out.push_str(&row);
            out.push('\n');
        }
    }
}

fn connect_table<'a>(out: &mut String, lines: impl Iterator<Item = &'a ResultLine>) {
    // (devices, transport) → target → runs.
    let mut connect_runs: BTreeMap<(u64, String), RunsByTarget<'a>> = BTreeMap::new();
    for line in lines {
        let key = (line.devices, line.transport_label());
        connect_runs.entry(key).or_default().entry(target_label(line)).or_default().push(line);
    }
    if connect_runs.is_empty() {
        return;
    }
    out.push_str("\n### connect (medians over runs)\n\n");
    out.push_str("| devices | transport | target | runs | logins/s | login p50 µs | login p99 µs | all online s | errors | target CPU µs per login | RSS per connection, bytes |\n");
    out.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((devices, transport), targets) in &connect_runs {
        for name in ringiot_first(targets) {
            let runs = &targets[name];
            let _ = writeln!(
                out,
                "| {devices} | {transport} | {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                runs.len(),
                show(median_of(runs, |l| Some(l.throughput_per_s)), 0),
                show(median_of(runs, |l| Some(l.p50_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p99_us as f64)), 0),
                show(median_of(runs, |l| l.all_online_s), 2),
                runs.iter().map(|l| l.errors).sum::<u64>(),
                show(median_of(runs, cpu_us_per_op), 1),
                show(median_of(runs, |l| l.rss_per_connection_bytes.map(|b| b as f64)), 0),
            );
        }
    }
}

fn messages_table<'a>(out: &mut String, lines: impl Iterator<Item = &'a ResultLine>) {
    // (scenario, devices, per device, clients, transport) → runs.
    let mut message_runs: BTreeMap<(String, u64, u64, u64, String), Vec<&ResultLine>> = BTreeMap::new();
    for line in lines {
        let key = (
            line.scenario.clone(),
            line.devices,
            line.per_device.unwrap_or(0),
            line.clients,
            line.transport_label(),
        );
        message_runs.entry(key).or_default().push(line);
    }
    if message_runs.is_empty() {
        return;
    }
    out.push_str("\n### messages (medians over runs)\n\n");
    out.push_str("| phase | devices | per device | clients | transport | runs | messages/s | p50 µs | p90 µs | p99 µs | p99.9 µs | errors | target CPU (cores) | bench CPU (cores) |\n");
    out.push_str("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((scenario, devices, per_device, clients, transport), runs) in &message_runs {
        let phase = scenario.trim_start_matches("messages-");
        let phase = if phase == "accept" { "accept (201, durable)" } else { "deliver (at login)" };
        let clients = if *clients == 0 { "–".to_owned() } else { clients.to_string() };
        let _ = writeln!(
            out,
            "| {phase} | {devices} | {per_device} | {clients} | {transport} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            runs.len(),
            show(median_of(runs, |l| Some(l.throughput_per_s)), 0),
            show(median_of(runs, |l| Some(l.p50_us as f64)), 0),
            show(median_of(runs, |l| Some(l.p90_us as f64)), 0),
            show(median_of(runs, |l| Some(l.p99_us as f64)), 0),
            show(median_of(runs, |l| Some(l.p999_us as f64)), 0),
            runs.iter().map(|l| l.errors).sum::<u64>(),
            show(median_of(runs, |l| cores(l, l.target_cpu_s)), 2),
            show(median_of(runs, |l| cores(l, l.bench_cpu_s)), 2),
        );
    }
    out.push_str("\nAccept latency: the 201's round trip. Deliver latency: per device, its CONNECT → its last message.\n");
}

fn batch_table<'a>(out: &mut String, lines: impl Iterator<Item = &'a ResultLine>) {
    let mut batch_runs: BTreeMap<(u64, String), Vec<&ResultLine>> = BTreeMap::new();
    for line in lines {
        batch_runs.entry((line.devices, line.transport_label())).or_default().push(line);
    }
    if batch_runs.is_empty() {
        return;
    }
    out.push_str("\n### batch, createCommands over the whole fleet (medians over runs)\n\n");
    out.push_str("| devices | transport | runs | time to finish s | targets/s | reached p50 µs | reached p99 µs | fail | target CPU (cores) | bench CPU (cores) |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((devices, transport), runs) in &batch_runs {
        let _ = writeln!(
            out,
            "| {devices} | {transport} | {} | {} | {} | {} | {} | {} | {} | {} |",
            runs.len(),
            show(median_of(runs, |l| Some(l.duration_s)), 3),
            show(median_of(runs, |l| Some(l.throughput_per_s)), 0),
            show(median_of(runs, |l| Some(l.p50_us as f64)), 0),
            show(median_of(runs, |l| Some(l.p99_us as f64)), 0),
            runs.iter().map(|l| l.errors).sum::<u64>(),
            show(median_of(runs, |l| cores(l, l.target_cpu_s)), 2),
            show(median_of(runs, |l| cores(l, l.bench_cpu_s)), 2),
        );
    }
    out.push_str("\nReached: from the POST until each device had its command request.\n");
}

/// (gateways, sub-devices per gateway, clients, transport, target) identifies comparable
/// gateway runs; each has a `sub_device` and a `direct` line.
type GatewayKey = (u64, u64, u64, String, String);
/// What the calls went to, in the order the table lists it.
const GATEWAY_TARGET_KINDS: [&str; 2] = ["sub_device", "direct"];

fn gateway_tables<'a>(out: &mut String, lines: impl Iterator<Item = &'a ResultLine>) {
    let mut gateway_runs: BTreeMap<GatewayKey, BTreeMap<String, Vec<&ResultLine>>> = BTreeMap::new();
    for line in lines {
        let key = (
            line.gateways.unwrap_or(0),
            line.sub_devices_per_gateway.unwrap_or(0),
            line.clients,
            line.transport_label(),
            target_label(line),
        );
        let kind = line.target_kind.clone().unwrap_or_default();
        gateway_runs.entry(key).or_default().entry(kind).or_default().push(line);
    }
    if gateway_runs.is_empty() {
        return;
    }
    out.push_str("\n### gateway: commands to sub-devices and to direct devices (medians over runs)\n\n");
    out.push_str("| gateways | sub-devices per gateway | clients | transport | target | calls to | devices | runs | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs | errors | target CPU (cores) | target CPU µs per call | bench CPU (cores) |\n");
    out.push_str("|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((gateways, per_gateway, clients, transport, name), kinds) in &gateway_runs {
        for kind in GATEWAY_TARGET_KINDS {
            let Some(runs) = kinds.get(kind) else { continue };
            let _ = writeln!(
                out,
                "| {gateways} | {per_gateway} | {clients} | {transport} | {name} | {kind} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                show(median_of(runs, |l| Some(l.devices as f64)), 0),
                runs.len(),
                show(median_of(runs, |l| Some(l.throughput_per_s)), 0),
                show(median_of(runs, |l| Some(l.p50_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p90_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p99_us as f64)), 0),
                show(median_of(runs, |l| Some(l.p999_us as f64)), 0),
                runs.iter().map(|l| l.errors).sum::<u64>(),
                show(median_of(runs, |l| cores(l, l.target_cpu_s)), 2),
                show(median_of(runs, cpu_us_per_op), 1),
                show(median_of(runs, |l| cores(l, l.bench_cpu_s)), 2),
            );
        }
    }
    out.push_str("\n| gateways | sub-devices per gateway | clients | transport | target | sub-devices off their gateway's shard | throughput sub_device / direct | p99 sub_device / direct | CPU per call sub_device / direct |\n");
    out.push_str("|---:|---:|---:|---|---|---:|---:|---:|---:|\n");
    for ((gateways, per_gateway, clients, transport, name), kinds) in &gateway_runs {
        let (Some(sub_device), Some(direct)) = (kinds.get("sub_device"), kinds.get("direct")) else {
            continue;
        };
        let hop_share = median_of(sub_device, |l| l.gateway_hop_share.map(|share| share * 100.0));
        let _ = writeln!(
            out,
            "| {gateways} | {per_gateway} | {clients} | {transport} | {name} | {} | {} |",
            hop_share.map_or("–".to_owned(), |percent| format!("{percent:.0} %")),
            ratios(sub_device, direct),
        );
    }
}

/// Parses a JSON-lines file, skipping blank lines; names the first bad line.
pub fn parse_lines(text: &str) -> anyhow::Result<Vec<ResultLine>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|error| anyhow::anyhow!("line {}: {error}", number + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{LatencySummary, RunShape};

    fn command_line(target: &str, throughput: f64, p99_us: u64) -> ResultLine {
        let shape = RunShape {
            devices: 1000,
            clients: 64,
            duration_s: 10.0,
            ops: (throughput * 10.0) as u64,
            errors: 0,
        };
        let summary =
            LatencySummary { count: 1, p50_us: 100, p90_us: 200, p99_us, p999_us: 900, max_us: 1000 };
        let mut line = ResultLine::new("command-rtt", target, shape, summary);
        line.loop_mode = Some("closed".to_owned());
        line.target_cpu_s = Some(10.0);
        line
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn repeated_runs_fold_into_medians_and_ratios() {
        let lines = vec![
            command_line("ringiot", 30_000.0, 1_000),
            command_line("mosquitto", 20_000.0, 2_000),
            command_line("ringiot", 40_000.0, 3_000),
            command_line("mosquitto", 20_000.0, 2_000),
            command_line("ringiot", 50_000.0, 2_000),
            command_line("mosquitto", 20_000.0, 2_000),
        ];
        let text = markdown(&lines);
        assert!(
            text.contains(
                "| 1000 | 64 | closed | tcp | ringiot | 3 | 40000 | 100 | 200 | 2000 | 900 | 0 | 1.00 | 25.0 |"
            ),
            "{text}"
        );
        // CPU per call: 10 s / 400,000 calls = 25 µs against 10 s / 200,000 = 50 µs.
        assert!(text.contains("| 1000 | 64 | tcp | ringiot | ×2.00 | ×1.00 | ×0.50 |"), "{text}");
        let ringiot_row = text.find("| ringiot |").unwrap();
        assert!(ringiot_row < text.find("| mosquitto |").unwrap(), "ringiot is listed first");
    }

    #[test]
    fn engines_of_different_shard_counts_get_their_own_rows_and_ratios() {
        let with_shards = |shards: u64, throughput: f64| {
            let mut line = command_line("ringiot", throughput, 2_000);
            line.engine_shards = Some(shards);
            line
        };
        let lines = vec![
            with_shards(1, 10_000.0),
            command_line("mosquitto", 20_000.0, 2_000),
            with_shards(2, 30_000.0),
            with_shards(1, 12_000.0),
        ];
        let text = markdown(&lines);
        assert!(text.contains("| closed | tcp | ringiot (1 shard) | 2 | 11000 |"), "{text}");
        assert!(text.contains("| closed | tcp | ringiot (2 shards) | 1 | 30000 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | tcp | ringiot (1 shard) | ×0.55 | ×1.00 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | tcp | ringiot (2 shards) | ×1.50 | ×1.00 |"), "{text}");
    }

    #[test]
    fn message_and_batch_runs_get_their_own_tables() {
        let summary =
            LatencySummary { count: 1, p50_us: 10, p90_us: 20, p99_us: 30, p999_us: 40, max_us: 50 };
        let line = |scenario: &str, clients: u64, ops: u64, duration_s: f64| {
            let shape = RunShape { devices: 1000, clients, duration_s, ops, errors: 0 };
            let mut line = ResultLine::new(scenario, "ringiot", shape, summary);
            line.per_device = scenario.starts_with("messages").then_some(20);
            line
        };
        let lines = vec![
            line("messages-accept", 64, 20_000, 4.0),
            line("messages-deliver", 0, 20_000, 1.0),
            line("messages-accept", 64, 20_000, 2.0),
            line("messages-deliver", 0, 20_000, 2.0),
            line("batch", 1, 1000, 0.5),
        ];
        let text = markdown(&lines);
        assert!(text.contains("| accept (201, durable) | 1000 | 20 | 64 | tcp | 2 | 7500 | 10 |"), "{text}");
        assert!(text.contains("| deliver (at login) | 1000 | 20 | – | tcp | 2 | 15000 | 10 |"), "{text}");
        assert!(text.contains("| 1000 | tcp | 1 | 0.500 | 2000 | 10 | 30 | 0 |"), "{text}");
    }

    #[test]
    fn tls_runs_get_their_own_rows_and_are_compared_with_tcp_and_with_mosquitto() {
        let over_tls = |target: &str, throughput: f64, p99_us: u64| {
            let mut line = command_line(target, throughput, p99_us);
            line.tls = true;
            line.tls_version = Some("1.3".to_owned());
            line
        };
        let lines = vec![
            command_line("ringiot", 40_000.0, 2_000),
            command_line("mosquitto", 50_000.0, 1_000),
            over_tls("ringiot", 30_000.0, 3_000),
            over_tls("mosquitto", 25_000.0, 2_000),
        ];
        let text = markdown(&lines);
        assert!(text.contains("| 1000 | 64 | closed | tcp | ringiot | 1 | 40000 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | closed | tls1.3 | ringiot | 1 | 30000 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | tls1.3 | ringiot | ×1.20 | ×1.50 | ×0.83 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | tls1.3 | ringiot | ×0.75 | ×1.50 | ×1.33 |"), "{text}");
        assert!(text.contains("| 1000 | 64 | tls1.3 | mosquitto | ×0.50 | ×2.00 | ×2.00 |"), "{text}");
    }

    #[test]
    fn connect_runs_show_each_target_and_transport() {
        let login_line = |target: &str, tls: bool| {
            let shape = RunShape { devices: 100, clients: 0, duration_s: 0.5, ops: 100, errors: 0 };
            let summary =
                LatencySummary { count: 100, p50_us: 10, p90_us: 20, p99_us: 30, p999_us: 40, max_us: 50 };
            let mut line = ResultLine::new("connect", target, shape, summary);
            line.tls = tls;
            line.tls_version = tls.then(|| "1.2".to_owned());
            line.target_cpu_s = Some(0.01);
            line
        };
        let text = markdown(&[
            login_line("mosquitto", true),
            login_line("ringiot", true),
            login_line("ringiot", false),
        ]);
        let ringiot_tls =
            text.find("| 100 | tls1.2 | ringiot | 1 | 200 | 10 | 30 | – | 0 | 100.0 |").expect(&text);
        let mosquitto_tls = text.find("| 100 | tls1.2 | mosquitto | 1 | 200 |").expect(&text);
        assert!(text.contains("| 100 | tcp | ringiot | 1 |"), "{text}");
        assert!(ringiot_tls < mosquitto_tls, "ringiot is listed first\n{text}");
    }

    #[test]
    fn gateway_runs_list_sub_device_then_direct_and_compare_them() {
        let gateway_line = |kind: &str, devices: u64, throughput: f64, p99_us: u64| {
            let mut line = command_line("ringiot", throughput, p99_us);
            line.scenario = "gateway".to_owned();
            line.devices = devices;
            line.engine_shards = Some(2);
            line.target_kind = Some(kind.to_owned());
            line.gateways = Some(100);
            line.sub_devices_per_gateway = Some(100);
            line.gateway_hop_share = (kind == "sub_device").then_some(0.5);
            line
        };
        let text = markdown(&[
            gateway_line("direct", 100, 30_000.0, 2_000),
            gateway_line("sub_device", 10_000, 24_000.0, 3_000),
            gateway_line("direct", 100, 20_000.0, 2_000),
            gateway_line("sub_device", 10_000, 16_000.0, 3_000),
        ]);
        assert!(!text.contains("### command-rtt"), "gateway lines have their own table\n{text}");
        let sub_device = text
            .find("| 100 | 100 | 64 | tcp | ringiot (2 shards) | sub_device | 10000 | 2 | 20000 | 100 | 200 | 3000 |")
            .expect(&text);
        let direct = text
            .find("| 100 | 100 | 64 | tcp | ringiot (2 shards) | direct | 100 | 2 | 25000 |")
            .expect(&text);
        assert!(sub_device < direct, "sub-devices are listed first\n{text}");
        // CPU per call: the median of 10 s / 240,000 and / 160,000 calls (52.1 µs) against that
        // of 10 s / 300,000 and / 200,000 (41.7 µs).
        assert!(
            text.contains("| 100 | 100 | 64 | tcp | ringiot (2 shards) | 50 % | ×0.80 | ×1.50 | ×1.25 |"),
            "{text}"
        );
    }

    #[test]
    fn result_lines_round_trip_through_json() {
        let line = command_line("ringiot", 1.0, 2);
        let parsed = parse_lines(&format!("{}\n\n{}\n", line.to_json_line(), line.to_json_line())).unwrap();
        assert_eq!(parsed, vec![line.clone(), line]);
        assert!(parse_lines("{not json}\n").unwrap_err().to_string().starts_with("line 1"));
    }
}
