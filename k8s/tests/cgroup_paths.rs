//! `/proc/PID/cgroup` as each runtime and cgroup driver writes it, and what it must yield.
//!
//! The shapes are those the kubelet (pkg/kubelet/cm: `kubepods`, QoS level, `pod<uid>`),
//! containerd (`cri-containerd-<id>.scope`), CRI-O (`crio-<id>.scope`, `crio-conmon-`),
//! Docker (`docker-<id>.scope`, `/docker/<id>`) and Podman (`libpod-<id>.scope`) create, under
//! cgroup v1, v2 and hybrid hosts, with the systemd and cgroupfs drivers.

use proptest::prelude::*;
use wirelens_k8s::{identity_of_path, parse_proc_cgroup, QosClass, Runtime};

/// A container id (64 hex digits, as every runtime makes them).
const CID: &str = "fa0c4b20a6b9a462b152a2d353393a0d3e42cd476107cf191a25e69b359fad36";
/// The container of a kind node (the node is itself a Docker container).
const NODE: &str = "9fe13daa90e356f55025bc09f63a85ee994f6a251e8633ba0a7213113f33227a";
const UID: &str = "0f3e5c1a-7b2d-4e8f-9a6b-1c2d3e4f5a6b";
/// The same UID as systemd escapes it in a slice name.
const UID_: &str = "0f3e5c1a_7b2d_4e8f_9a6b_1c2d3e4f5a6b";
/// A static pod's UID: the kubelet's hash of its manifest.
const STATIC_UID: &str = "8c5bfd6fae2c2caff9fb61699e366262";

struct Case {
    name: &'static str,
    text: String,
    pod: Option<&'static str>,
    qos: Option<QosClass>,
    container: Option<(Runtime, &'static str)>,
}

fn case(
    name: &'static str,
    text: String,
    pod: Option<&'static str>,
    qos: Option<QosClass>,
    container: Option<(Runtime, &'static str)>,
) -> Case {
    Case {
        name,
        text,
        pod,
        qos,
        container,
    }
}

/// Lines of a cgroup v1 host with every controller at `path`, plus the unified line a
/// hybrid host adds (`0::/`, or the same path under systemd's unified layout).
fn v1(path: &str, unified: &str) -> String {
    let controllers = [
        "12:pids",
        "11:hugetlb",
        "10:cpu,cpuacct",
        "9:net_cls,net_prio",
        "8:memory",
        "7:devices",
        "6:freezer",
        "5:blkio",
        "4:perf_event",
        "3:cpuset",
        "2:rdma",
        "1:name=systemd",
    ];
    let mut out: String = controllers
        .iter()
        .map(|c| format!("{c}:{path}\n"))
        .collect();
    out.push_str(&format!("0::{unified}\n"));
    out
}

fn v2(path: &str) -> String {
    format!("0::{path}\n")
}

use QosClass::{BestEffort, Burstable, Guaranteed};
use Runtime::{Containerd, CriO, Docker, Podman, Unknown};

fn containers() -> Vec<Case> {
    let sd =
        |qos: &str| format!("/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_}.slice");
    let sd_guaranteed = format!("/kubepods.slice/kubepods-pod{UID_}.slice");
    vec![
        // containerd, systemd driver, cgroup v2: the default of current distributions.
        case(
            "containerd v2 systemd burstable",
            v2(&format!("{}/cri-containerd-{CID}.scope", sd("burstable"))),
            Some(UID),
            Some(Burstable),
            Some((Containerd, CID)),
        ),
        case(
            "containerd v2 systemd besteffort",
            v2(&format!("{}/cri-containerd-{CID}.scope", sd("besteffort"))),
            Some(UID),
            Some(BestEffort),
            Some((Containerd, CID)),
        ),
        case(
            "containerd v2 systemd guaranteed (no QoS level)",
            v2(&format!("{sd_guaranteed}/cri-containerd-{CID}.scope")),
            Some(UID),
            Some(Guaranteed),
            Some((Containerd, CID)),
        ),
        // containerd, cgroupfs driver: the cgroup is the bare id.
        case(
            "containerd v2 cgroupfs burstable",
            v2(&format!("/kubepods/burstable/pod{UID}/{CID}")),
            Some(UID),
            Some(Burstable),
            Some((Unknown, CID)),
        ),
        case(
            "containerd v2 cgroupfs guaranteed",
            v2(&format!("/kubepods/pod{UID}/{CID}")),
            Some(UID),
            Some(Guaranteed),
            Some((Unknown, CID)),
        ),
        case(
            "containerd v1 cgroupfs besteffort, hybrid 0::/",
            v1(&format!("/kubepods/besteffort/pod{UID}/{CID}"), "/"),
            Some(UID),
            Some(BestEffort),
            Some((Unknown, CID)),
        ),
        case(
            "containerd v1 systemd, hybrid with the unified path",
            v1(
                &format!("{}/cri-containerd-{CID}.scope", sd("burstable")),
                &format!("{}/cri-containerd-{CID}.scope", sd("burstable")),
            ),
            Some(UID),
            Some(Burstable),
            Some((Containerd, CID)),
        ),
        // CRI-O.
        case(
            "cri-o v2 systemd burstable",
            v2(&format!("{}/crio-{CID}.scope", sd("burstable"))),
            Some(UID),
            Some(Burstable),
            Some((CriO, CID)),
        ),
        case(
            "cri-o v1 systemd guaranteed",
            v1(&format!("{sd_guaranteed}/crio-{CID}.scope"), "/"),
            Some(UID),
            Some(Guaranteed),
            Some((CriO, CID)),
        ),
        case(
            "cri-o v2 cgroupfs besteffort",
            v2(&format!("/kubepods/besteffort/pod{UID}/crio-{CID}")),
            Some(UID),
            Some(BestEffort),
            Some((CriO, CID)),
        ),
        case(
            "cri-o conmon: the pod, not a container",
            v2(&format!("{}/crio-conmon-{CID}.scope", sd("burstable"))),
            Some(UID),
            Some(Burstable),
            None,
        ),
        // Docker as the kubelet's runtime (dockershim, cri-dockerd).
        case(
            "docker v1 systemd besteffort",
            v1(&format!("{}/docker-{CID}.scope", sd("besteffort")), "/"),
            Some(UID),
            Some(BestEffort),
            Some((Docker, CID)),
        ),
        case(
            "docker v1 cgroupfs burstable",
            v1(&format!("/kubepods/burstable/pod{UID}/{CID}"), "/"),
            Some(UID),
            Some(Burstable),
            Some((Unknown, CID)),
        ),
        // Docker and Podman outside Kubernetes: a container, no pod.
        case(
            "docker v2 systemd",
            v2(&format!("/system.slice/docker-{CID}.scope")),
            None,
            None,
            Some((Docker, CID)),
        ),
        case(
            "docker v1 cgroupfs",
            v1(&format!("/docker/{CID}"), "/"),
            None,
            None,
            Some((Docker, CID)),
        ),
        case(
            "docker v2 systemd, systemd inside the container",
            v2(&format!("/system.slice/docker-{CID}.scope/init.scope")),
            None,
            None,
            Some((Docker, CID)),
        ),
        case(
            "podman v2 systemd",
            v2(&format!("/machine.slice/libpod-{CID}.scope")),
            None,
            None,
            Some((Podman, CID)),
        ),
        case(
            "podman rootless",
            v2(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container"
            )),
            None,
            None,
            Some((Podman, CID)),
        ),
        // Nesting and namespaces.
        case(
            "kind node: a pod under the node's own Docker container",
            v2(&format!(
                "/system.slice/docker-{NODE}.scope/kubelet.slice/kubelet-kubepods.slice/\
                 kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/\
                 cri-containerd-{CID}.scope"
            )),
            Some(UID),
            Some(BestEffort),
            Some((Containerd, CID)),
        ),
        case(
            "kind node: the pod slice itself is not the node container",
            v2(&format!(
                "/system.slice/docker-{NODE}.scope/kubelet.slice/kubelet-kubepods.slice/\
                 kubelet-kubepods-pod{UID_}.slice"
            )),
            Some(UID),
            Some(Guaranteed),
            None,
        ),
        case(
            "seen from the agent's own cgroup namespace",
            v2(&format!(
                "/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
            )),
            Some(UID),
            Some(BestEffort),
            Some((Containerd, CID)),
        ),
        case(
            "a process in the pod's slice, no container",
            v2(&sd("burstable")),
            Some(UID),
            Some(Burstable),
            None,
        ),
        case(
            "static pod: the manifest hash as UID",
            v2(&format!(
                "/kubepods.slice/kubepods-burstable.slice/\
                 kubepods-burstable-pod{STATIC_UID}.slice/cri-containerd-{CID}.scope"
            )),
            Some(STATIC_UID),
            Some(Burstable),
            Some((Containerd, CID)),
        ),
        case(
            "a removed cgroup",
            v2(&format!("/kubepods/burstable/pod{UID}/{CID} (deleted)")),
            Some(UID),
            Some(Burstable),
            Some((Unknown, CID)),
        ),
        case(
            "kubelet with a custom cgroup root",
            v2(&format!("/kubelet/kubepods/besteffort/pod{UID}/{CID}")),
            Some(UID),
            Some(BestEffort),
            Some((Unknown, CID)),
        ),
    ]
}

/// Processes that are in no container and no pod.
fn host_processes() -> Vec<(&'static str, String)> {
    vec![
        ("empty file", String::new()),
        ("root cgroup", v2("/")),
        ("init", v2("/init.scope")),
        ("containerd itself", v2("/system.slice/containerd.service")),
        ("kubelet", v2("/system.slice/kubelet.service")),
        (
            "a login session",
            v2("/user.slice/user-1000.slice/session-3.scope"),
        ),
        (
            "v1 host service",
            v1("/system.slice/sshd.service", "/system.slice/sshd.service"),
        ),
        (
            "the QoS level",
            v2("/kubepods.slice/kubepods-burstable.slice"),
        ),
        ("the kubepods root", v1("/kubepods", "/")),
        (
            "pod-like name outside kubepods",
            v2(&format!("/system.slice/my-pod{UID_}.slice")),
        ),
        ("not a uid", v2("/kubepods/burstable/podnotauid/abc")),
        (
            "63 hex digits",
            v2(&format!("/system.slice/docker-{}.scope", &CID[..63])),
        ),
        (
            "uppercase hex",
            v2(&format!("/docker/{}", CID.to_uppercase())),
        ),
        (
            "garbage",
            "no colons here\n::\n:x:/\nabc:def:/ghi\n".to_string(),
        ),
    ]
}

#[test]
fn each_runtime_and_driver() {
    let mut failures = Vec::new();
    for c in containers() {
        let parsed = parse_proc_cgroup(&c.text);
        assert_eq!(parsed.skipped_lines, 0, "{}: {:?}", c.name, c.text);
        let id = parsed.identity();
        let got = (
            id.pod_uid.as_ref().map(|u| u.as_str().to_string()),
            id.qos,
            id.container
                .as_ref()
                .map(|c| (c.runtime(), c.as_str().to_string())),
        );
        let want = (
            c.pod.map(str::to_string),
            c.qos,
            c.container.map(|(r, s)| (r, s.to_string())),
        );
        if got != want {
            failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn host_processes_yield_nothing() {
    for (name, text) in host_processes() {
        let id = parse_proc_cgroup(&text).identity();
        assert_eq!(id, Default::default(), "{name}: {text:?}");
    }
}

#[test]
fn lines_and_controllers() {
    let text = v1(&format!("/kubepods/besteffort/pod{UID}/{CID}"), "/");
    let parsed = parse_proc_cgroup(&text);
    assert_eq!(parsed.lines.len(), 13);
    assert_eq!(parsed.unified_path(), Some("/"));
    let cpu = parsed.lines.iter().find(|l| l.hierarchy == 10).unwrap();
    assert_eq!(cpu.controllers().collect::<Vec<_>>(), ["cpu", "cpuacct"]);
    assert!(!cpu.is_unified());
    let systemd = parsed.lines.iter().find(|l| l.hierarchy == 1).unwrap();
    assert_eq!(systemd.controllers().collect::<Vec<_>>(), ["name=systemd"]);
    // A path may hold a colon: only the first two separate fields.
    let odd = parse_proc_cgroup("0::/system.slice/a:b.service\n");
    assert_eq!(odd.unified_path(), Some("/system.slice/a:b.service"));
}

#[test]
fn malformed_lines_are_counted() {
    let text = format!("garbage\n0::relative\nx::/\n\n0::/kubepods/pod{UID}/{CID}\n");
    let parsed = parse_proc_cgroup(&text);
    assert_eq!(parsed.skipped_lines, 3);
    assert_eq!(parsed.lines.len(), 1);
    assert_eq!(parsed.identity().pod_uid.unwrap().as_str(), UID);
}

#[test]
fn lines_are_bounded() {
    let text = "1:cpu:/\n".repeat(wirelens_k8s::cgroup::MAX_LINES + 5);
    let parsed = parse_proc_cgroup(&text);
    assert_eq!(parsed.lines.len(), wirelens_k8s::cgroup::MAX_LINES);
    assert_eq!(parsed.skipped_lines, 5);
}

#[test]
fn hybrid_prefers_the_line_that_names_the_container() {
    // The unified line is the pod slice only; a v1 line names the container too.
    let text =
        format!("4:memory:/kubepods/burstable/pod{UID}/{CID}\n0::/kubepods/burstable/pod{UID}\n");
    let id = parse_proc_cgroup(&text).identity();
    assert_eq!(id.container.unwrap().as_str(), CID);
}

/// Pieces real paths are made of, to build inputs close to the accepted shapes.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kubepods".to_string()),
        Just("kubepods.slice".to_string()),
        Just("burstable".to_string()),
        Just(format!("kubepods-besteffort-pod{UID_}.slice")),
        Just(format!("pod{UID}")),
        Just(format!("cri-containerd-{CID}.scope")),
        Just(format!("crio-{}", &CID[..40])),
        Just("..".to_string()),
        Just("-pod.slice".to_string()),
        Just("kubepods-pod.slice".to_string()),
        "[a-z0-9_.:-]{0,20}",
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,300}") {
        let parsed = parse_proc_cgroup(&text);
        let _ = parsed.identity();
        let _ = parsed.unified_path();
        let _ = identity_of_path(&text);
    }

    #[test]
    fn never_panics_on_path_like_text(
        pieces in proptest::collection::vec(piece(), 0..12),
        hierarchy in "[0-9]{0,3}",
        controllers in "[a-z,=]{0,12}",
    ) {
        let path = format!("/{}", pieces.join("/"));
        let text = format!("{hierarchy}:{controllers}:{path}\n0::{path}\n");
        let parsed = parse_proc_cgroup(&text);
        let id = parsed.identity();
        if let Some(c) = id.container {
            prop_assert_eq!(c.as_str().len(), 64);
        }
        let _ = identity_of_path(&path);
    }
}
