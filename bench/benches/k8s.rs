//! Kubernetes enrichment per record, as the DaemonSet runs it: who the observed process is
//! (`k8s`) and what the other end is (`peer_k8s`), from a node's worth of metadata.
//!
//! The store holds 20 Deployments of 3 pods each (their ReplicaSets, one Service per
//! Deployment with its EndpointSlice). 60 observed processes, one per pod, answer 10,000
//! exchanges: half as servers called by another pod's address, half as clients calling a
//! Service's cluster IP.
//!
//! - `enrich`: [`Enricher::enrich`] on the 10,000 records;
//! - `enrich_json`: the same, then each record written as JSON (the `k8s` and `peer_k8s`
//!   objects included), as `run` does;
//! - `json_only`: the records written without enrichment, the part of `enrich_json` that is
//!   not Kubernetes.
//!
//! Run: `cargo bench -p wirelens-bench --bench k8s`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wirelens::k8s::Enricher;
use wirelens::output::{Format, ProcessRecord, Record, RecordWriter};
use wirelens_k8s::meta::{Meta, MetaSettings, ObjKind, Object};
use wirelens_k8s::{
    CgroupIdentity, ContainerId, ContainerKind, ContainerStatus, OwnerRef, PodMeta, Runtime,
};
use wirelens_protocols::http::{route_template, HttpRequest, HttpResponse};
use wirelens_protocols::{Exchange, Outcome, Request, Response, Role};

const N: usize = 10_000;
const DEPLOYMENTS: usize = 20;
const REPLICAS: usize = 3;
const PODS: usize = DEPLOYMENTS * REPLICAS;
const FIRST_PID: u32 = 100;

fn pod_ip(d: usize, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, d as u8, i as u8 + 1))
}

fn service_ip(d: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 96, 0, d as u8 + 1))
}

fn container_hex(d: usize, i: usize) -> String {
    format!(
        "{:064x}",
        (d * 1_000 + i + 1) as u128 * 0x9e37_79b9_7f4a_7c15
    )
}

/// A node's metadata: the pods of every Deployment, their ReplicaSets, Services and slices.
fn metadata() -> Arc<Meta> {
    let meta = Arc::new(Meta::new(&MetaSettings::for_node("node-1")));
    let now = Instant::now();
    let mut store = meta.write();
    for d in 0..DEPLOYMENTS {
        let deploy = format!("svc{d}");
        let rs = format!("{deploy}-5d8f7c9b6a");
        store.apply(
            Object::Owned {
                kind: ObjKind::ReplicaSet,
                namespace: "shop".into(),
                name: rs.clone(),
                controller: Some(OwnerRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: deploy.clone(),
                    uid: format!("deploy-{d}"),
                    controller: true,
                }),
            },
            now,
        );
        for i in 0..REPLICAS {
            let id = container_hex(d, i);
            store.apply(
                Object::Pod(PodMeta {
                    namespace: "shop".into(),
                    name: format!("{rs}-x{i}"),
                    uid: format!("uid-{d}-{i}"),
                    labels: [
                        ("app".to_string(), deploy.clone()),
                        ("pod-template-hash".to_string(), "5d8f7c9b6a".to_string()),
                    ]
                    .into(),
                    owner_references: vec![OwnerRef {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: rs.clone(),
                        uid: format!("rs-{d}"),
                        controller: true,
                    }],
                    node_name: Some("node-1".into()),
                    pod_ips: vec![pod_ip(d, i)],
                    containers: vec![ContainerStatus::new(
                        "app",
                        ContainerKind::Regular,
                        Some(&format!("containerd://{id}")),
                    )],
                    ..PodMeta::default()
                }),
                now,
            );
        }
        store.apply(
            Object::Service {
                namespace: "shop".into(),
                name: deploy.clone(),
                cluster_ips: vec![service_ip(d)],
            },
            now,
        );
        store.apply(
            Object::EndpointSlice {
                namespace: "shop".into(),
                name: format!("{deploy}-abcde"),
                service: Some(deploy.clone()),
                endpoints: (0..REPLICAS)
                    .map(|i| (pod_ip(d, i), Some(format!("{rs}-x{i}"))))
                    .collect(),
            },
            now,
        );
    }
    drop(store);
    meta
}

/// The process of pod `p` (pid FIRST_PID + p) is in that pod's container.
fn remember_cgroups(e: &Enricher) {
    for p in 0..PODS {
        let (d, i) = (p / REPLICAS, p % REPLICAS);
        e.remember_cgroup(
            FIRST_PID + p as u32,
            CgroupIdentity {
                container: ContainerId::new(Runtime::Containerd, &container_hex(d, i)),
                ..CgroupIdentity::default()
            },
        );
    }
}

fn record(i: usize) -> Record {
    let p = i % PODS;
    let (d, r) = (p / REPLICAS, p % REPLICAS);
    let other = (d + 1 + i % 7) % DEPLOYMENTS;
    let path = format!("/api/v1/items/{i}");
    let ex = Exchange {
        req_ts_ns: 1_000_000_000 + i as u64,
        resp_ts_ns: Some(1_000_250_000 + i as u64),
        request: Request::Http(HttpRequest {
            method: "GET".into(),
            route: Some(route_template(&path)),
            path,
            host: Some("svc".into()),
        }),
        response: Some(Response::Http(HttpResponse {
            status: 200,
            body_bytes: 100,
        })),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    };
    let process = Some(ProcessRecord {
        pid: FIRST_PID + p as u32,
        comm: "app".into(),
    });
    if i.is_multiple_of(2) {
        // Served to a pod of another Deployment.
        let client = SocketAddr::new(pod_ip(other, i % REPLICAS), 40_000 + (i % 1_000) as u16);
        let server = SocketAddr::new(pod_ip(d, r), 8080);
        Record::new(ex, Role::Server, client, server, process)
    } else {
        // A call to another Deployment's Service.
        let client = SocketAddr::new(pod_ip(d, r), 40_000 + (i % 1_000) as u16);
        let server = SocketAddr::new(service_ip(other), 80);
        Record::new(ex, Role::Client, client, server, process)
    }
}

fn bench(c: &mut Criterion) {
    let enricher = Enricher::new(metadata());
    let records: Vec<Record> = (0..N).map(record).collect();

    // What the records say once enriched (checked once, so that the bench measures a lookup
    // that finds its pods and Services).
    remember_cgroups(&enricher);
    let mut check = records.clone();
    enricher.enrich(&mut check);
    assert!(check
        .iter()
        .all(|r| r.k8s.is_some() && r.peer_k8s.is_some()));

    let mut g = c.benchmark_group("k8s");
    g.throughput(Throughput::Elements(N as u64));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("enrich", |b| {
        b.iter_batched_ref(
            || {
                remember_cgroups(&enricher);
                records.clone()
            },
            |rs| enricher.enrich(black_box(rs)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("enrich_json", |b| {
        let mut w = RecordWriter::new(Format::Jsonl, Box::new(std::io::sink()));
        b.iter_batched_ref(
            || {
                remember_cgroups(&enricher);
                records.clone()
            },
            |rs| {
                enricher.enrich(black_box(rs));
                for r in rs.iter() {
                    let _ = w.write(r);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("json_only", |b| {
        let mut w = RecordWriter::new(Format::Jsonl, Box::new(std::io::sink()));
        b.iter(|| {
            for r in &records {
                let _ = w.write(black_box(r));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
