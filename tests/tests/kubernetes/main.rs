//! End-to-end tests on a real Kubernetes control plane: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler built from source, KWOK's simulated nodes with
//! every pod served on loopback by the pod runner (`sluice_tests::cluster`), sluice installed
//! from `manifests/` and its controller running with the install's service account. One
//! control plane for the whole binary; the tests take it one at a time. With `KUBECONFIG` set,
//! they run against that cluster instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analysis;
mod article;
mod blue_green;
mod canary;
mod faults;
mod invalid;
mod lifecycle;
mod scale;
