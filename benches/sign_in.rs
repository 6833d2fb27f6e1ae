//! Sign-in timing (`make bench`): how long a refused sign-in takes for an unknown tenant, an
//! unknown e-mail and a wrong password, next to a successful one. The three refusals should
//! cost the same (the same argon2 work), so their timing tells nothing about which accounts
//! exist. Lockout is raised out of the way so every attempt is a real one.
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::Instant;

use helpers::{Api, TestStack, PASSWORD};

const ROUNDS: usize = 60;

#[tokio::main]
async fn main() {
    let stack = TestStack::new().await;
    let tenant = stack.create_tenant("signinbench").await;
    let server = stack
        .spawn_with_env(&["command-api"], &[("SIGN_IN_MAX_FAILURES", "1000000")])
        .await;
    let api = Api::new(&server);
    let cases = [
        (
            "right password",
            "signinbench",
            tenant.email.as_str(),
            PASSWORD,
        ),
        (
            "wrong password",
            "signinbench",
            tenant.email.as_str(),
            "wrong password!!",
        ),
        (
            "unknown e-mail",
            "signinbench",
            "nobody@signinbench.test",
            PASSWORD,
        ),
        (
            "unknown tenant",
            "nosuchtenant",
            tenant.email.as_str(),
            PASSWORD,
        ),
    ];
    let mut timings = vec![Vec::with_capacity(ROUNDS); cases.len()];
    // Interleaved, so drift in the machine's load falls on every case alike.
    for _ in 0..ROUNDS {
        for (case, (_, slug, email, password)) in cases.iter().enumerate() {
            let body = serde_json::json!({"tenant": slug, "email": email, "password": password});
            let started = Instant::now();
            let response = api
                .http
                .post(format!("{}/api/v1/auth/login", api.base_url))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            timings[case].push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status == 200, case == 0, "{status}");
        }
    }
    println!("sign-in, {ROUNDS} rounds each (ms):");
    for ((name, ..), mut samples) in cases.iter().zip(timings) {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!("  {name:<15} p50 {:6.1}  p90 {:6.1}", at(0.5), at(0.9));
    }
}
