//! The client-app write workload the write-path benchmarks share: 20 % `DraftQuote`, 80 %
//! `AddLineItem` on a random quote drafted so far, over HTTP by several Operator users, with
//! what a window of it cost (commands/s, latency, SQL statements and CPU per command).
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{open_account, Api, Process, Tenant, TestStack};

pub const COMMANDS_PER_WINDOW: usize = 6000;
pub const USERS: usize = 8;
const ACCOUNTS: usize = 8;

/// Users, accounts and the quotes drafted so far.
pub struct Workload {
    pub tokens: Vec<String>,
    pub accounts: Vec<Uuid>,
    quotes: Mutex<Vec<Uuid>>,
}

impl Workload {
    pub async fn prepare(stack: &TestStack, api: &Api, tenant: &Tenant) -> Self {
        let admin = api.login(tenant).await;
        let mut accounts = Vec::new();
        for n in 0..ACCOUNTS {
            let id = Uuid::new_v4();
            api.ok(&admin, id, open_account(&format!("bench-{n}")))
                .await;
            accounts.push(id);
        }
        let mut tokens = Vec::new();
        for _ in 0..USERS {
            let email = format!("op-{}@bench.test", Uuid::new_v4().simple());
            api.register(&admin, &email, json!(["Operator"]), None)
                .await;
            let pair = api.sign_in(tenant, &email).await;
            tokens.push(pair["access_token"].as_str().unwrap().to_owned());
        }
        let quotes = sqlx::query_scalar::<_, String>(
            "select distinct aggregate_id from events where aggregate_type = 'Quote'",
        )
        .fetch_all(&stack.db)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.parse().unwrap())
        .collect();
        Self {
            tokens,
            accounts,
            quotes: Mutex::new(quotes),
        }
    }

    /// One command of the mix: a new quote one time in five, else a line on a known quote.
    async fn send_one(&self, api: &Api, n: usize) -> Duration {
        let token = &self.tokens[n % USERS];
        let known = {
            let quotes = self.quotes.lock().unwrap();
            (!n.is_multiple_of(5) && !quotes.is_empty())
                .then(|| quotes[rand_index(n, quotes.len())])
        };
        let started = Instant::now();
        match known {
            Some(quote) => {
                let line = json!({"type": "AddLineItem", "line_id": Uuid::new_v4(),
                    "sku": format!("SKU-{}", n % 50), "description": "Widget",
                    "quantity": format!("{}", n % 20 + 1), "unit_price": "19.90"});
                api.ok_in(token, "quotes", quote, line).await;
            }
            None => {
                let quote = Uuid::new_v4();
                let valid_until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
                let draft = json!({"type": "DraftQuote",
                    "account_id": self.accounts[n % ACCOUNTS], "title": format!("Quote {n}"),
                    "valid_until": valid_until});
                api.ok_in(token, "quotes", quote, draft).await;
                self.quotes.lock().unwrap().push(quote);
            }
        }
        started.elapsed()
    }

    pub async fn run(&self, stack: &TestStack, api: &Api, server: &Process, c: usize) -> Window {
        let statements_before = statements(stack).await;
        let cpu_before = Cpu::now(server);
        let started = Instant::now();
        let mut latencies: Vec<f64> = futures::stream::iter(0..COMMANDS_PER_WINDOW)
            .map(|n| self.send_one(api, n))
            .buffer_unordered(c)
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = Cpu::now(server).minus(&cpu_before);
        let statements = statements(stack).await - statements_before;
        latencies.sort_by(f64::total_cmp);
        Window {
            per_second: COMMANDS_PER_WINDOW as f64 / elapsed,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            statements_per_command: statements as f64 / COMMANDS_PER_WINDOW as f64,
            cpu_ms_per_command: cpu.per_command(COMMANDS_PER_WINDOW),
        }
    }
}

/// A deterministic spread over the quotes drafted so far.
fn rand_index(n: usize, len: usize) -> usize {
    (n.wrapping_mul(2_654_435_761) >> 7) % len
}

pub struct Window {
    pub per_second: f64,
    pub p50: f64,
    pub p99: f64,
    pub statements_per_command: f64,
    pub cpu_ms_per_command: (f64, f64, f64),
}

impl Window {
    /// One line; `ceiling` (pgbench's tx/s) adds the ratio to it.
    pub fn print(
        &self,
        mode: &str,
        concurrency: usize,
        ceiling: Option<f64>,
        caught_up: Option<f64>,
    ) {
        let (b2b, postgres, rabbitmq) = self.cpu_ms_per_command;
        println!(
            "{mode:<11} c={concurrency:>2}: {:>6.0} commands/s{} | p50 {:.1} ms p99 {:.1} ms \
             | {:.1} SQL statements/command | CPU ms/command: b2b {b2b:.2}, Postgres {postgres:.2}, RabbitMQ {rabbitmq:.2}{}",
            self.per_second,
            ceiling.map_or(String::new(), |c| format!(" ({:.2} of the ceiling)", self.per_second / c)),
            self.p50,
            self.p99,
            self.statements_per_command,
            caught_up.map_or(String::new(), |s| format!(" | read models caught up {s:.2} s after the window")),
        );
    }
}

/// Turns on the statement counts [`statements`] reads.
pub async fn count_statements(stack: &TestStack) {
    sqlx::query("create extension if not exists pg_stat_statements")
        .execute(&stack.db)
        .await
        .expect("pg_stat_statements is preloaded by deploy/local/stack.sh");
}

/// Statements this database has run (pg_stat_statements, utility statements included).
pub async fn statements(stack: &TestStack) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements s \
           join pg_database d on d.oid = s.dbid where d.datname = current_database()",
    )
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

/// CPU time (user + system) so far of the b2b process, every Postgres process and the
/// RabbitMQ node, in clock ticks.
pub struct Cpu {
    b2b: u64,
    postgres: u64,
    rabbitmq: u64,
}

impl Cpu {
    pub fn now(server: &Process) -> Self {
        let b2b = ticks(server.child.id().unwrap());
        let (mut postgres, mut rabbitmq) = (0, 0);
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match comm.trim() {
                "postgres" => postgres += ticks(pid),
                "beam.smp" => rabbitmq += ticks(pid),
                _ => {}
            }
        }
        Self {
            b2b,
            postgres,
            rabbitmq,
        }
    }

    pub fn minus(&self, before: &Self) -> Self {
        Self {
            b2b: self.b2b.saturating_sub(before.b2b),
            // Backends come and go; a negative difference means some ended: count none.
            postgres: self.postgres.saturating_sub(before.postgres),
            rabbitmq: self.rabbitmq.saturating_sub(before.rabbitmq),
        }
    }

    pub fn per_command(&self, commands: usize) -> (f64, f64, f64) {
        // Linux reports in USER_HZ, 100 per second.
        let ms = |ticks: u64| ticks as f64 * 10.0 / commands as f64;
        (ms(self.b2b), ms(self.postgres), ms(self.rabbitmq))
    }
}

/// utime + stime of a process, in clock ticks.
fn ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
