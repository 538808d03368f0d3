//! The simulated nodes: KWOK manages the nodes annotated `kwok.x-k8s.io/node: fake` and gives
//! their pods IPs from the node's `podCIDR`, here in 127.0.0.0/8, so every pod's address is
//! one this machine answers on without any set-up.

/// How many nodes the cluster has.
pub const COUNT: usize = 2;

/// The nodes as a YAML stream, status included (a Node may be made with its status).
pub fn manifest() -> String {
    (0..COUNT)
        .map(|i| {
            format!(
                "apiVersion: v1
kind: Node
metadata:
  name: kwok-node-{i}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    kubernetes.io/hostname: kwok-node-{i}
    kubernetes.io/os: linux
    type: kwok
spec:
  podCIDR: 127.1.{i}.0/24
  podCIDRs: [127.1.{i}.0/24]
status:
  allocatable: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}
  capacity: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
  phase: Running
"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}
