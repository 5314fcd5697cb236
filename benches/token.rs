//! Throughput of EKS token signing (`token::presign`), the whole of what
//! `rolesh token --cluster-name` does once credentials are in the environment.
//!
//!   cargo bench --bench token
//!   cargo bench --bench token -- --quick     # shorter, for a smoke run

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rolesh::token::{self, StsEndpoints};

fn credentials(session_token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token.map(str::to_string),
        None,
        "bench",
    )
}

fn signing_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200) // 2024-01-01T00:00:00Z
}

fn bench_presign(c: &mut Criterion) {
    let time = signing_time();
    let (host, region) = token::sts_host(Some("us-east-1"), StsEndpoints::Regional);
    let plain = credentials(None);
    let session = credentials(Some("FQoGZXIvYXdzEXAMPLE/TOKEN+x=="));

    let mut group = c.benchmark_group("presign");
    group.throughput(Throughput::Elements(1));
    group.bench_function("regional", |b| {
        b.iter(|| {
            token::presign(black_box(&plain), black_box("demo"), &host, &region, time).unwrap()
        })
    });
    group.bench_function("regional+session_token", |b| {
        b.iter(|| {
            token::presign(black_box(&session), black_box("demo"), &host, &region, time).unwrap()
        })
    });
    group.finish();

    // What the CLI does per call after reading the environment: host, signature, JSON.
    c.bench_function("exec_credential/end_to_end", |b| {
        b.iter(|| {
            let (host, region) =
                token::sts_host(black_box(Some("us-east-1")), StsEndpoints::Regional);
            let t = token::presign(&plain, black_box("demo"), &host, &region, time).unwrap();
            token::exec_credential(&token::wire(&t), token::DEFAULT_API_VERSION)
        })
    });
}

criterion_group!(benches, bench_presign);
criterion_main!(benches);
