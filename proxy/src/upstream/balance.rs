//! Picking an endpoint of a backend: the less loaded of two random choices ("power of two
//! choices"), by requests in flight. Randomness is an argument so that tests are deterministic.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::upstream::endpoint::Endpoint;

/// Like [`pick`], among the endpoints available at `now_ms` (not ejected, not failing their
/// probes); among all of them when none is available.
pub fn pick_available(
    endpoints: &[Arc<Endpoint>],
    now_ms: u64,
    below: impl FnMut(usize) -> usize,
) -> Option<&Arc<Endpoint>> {
    let available = endpoints
        .iter()
        .filter(|e| e.health.available(now_ms))
        .count();
    if available == endpoints.len() || available == 0 {
        return pick(endpoints, below);
    }
    let subset: Vec<Arc<Endpoint>> = endpoints
        .iter()
        .filter(|e| e.health.available(now_ms))
        .cloned()
        .collect();
    let chosen = pick(&subset, below)?;
    endpoints.iter().find(|e| Arc::ptr_eq(e, chosen))
}

/// The less loaded of two distinct endpoints drawn with `below(n)` (a uniform draw in `0..n`);
/// `None` when there is no endpoint.
pub fn pick(
    endpoints: &[Arc<Endpoint>],
    mut below: impl FnMut(usize) -> usize,
) -> Option<&Arc<Endpoint>> {
    match endpoints.len() {
        0 => None,
        1 => endpoints.first(),
        n => {
            let a = below(n) % n;
            let mut b = below(n - 1) % (n - 1);
            if b >= a {
                b += 1;
            }
            let (ea, eb) = (endpoints.get(a)?, endpoints.get(b)?);
            if eb.in_flight.load(Relaxed) < ea.in_flight.load(Relaxed) {
                Some(eb)
            } else {
                Some(ea)
            }
        }
    }
}

/// Counts a request in flight on an endpoint for as long as it lives.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    /// Starts counting.
    pub fn start(endpoint: &Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Relaxed);
        Self(endpoint.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn endpoints(loads: &[usize]) -> Vec<Arc<Endpoint>> {
        loads
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Arc::new(Endpoint {
                    authority: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    in_flight: AtomicUsize::new(*l),
                    health: Default::default(),
                    h1: Default::default(),
                })
            })
            .collect()
    }

    #[test]
    fn picks_the_less_loaded_of_the_two_draws() {
        let eps = endpoints(&[5, 1, 3]);
        // draws 0 then 0 → endpoints 0 and 1
        let p = pick(&eps, |_| 0).unwrap();
        assert_eq!(p.authority.port_u16(), Some(9001));
        // draws 2 then 1 → endpoints 2 and 1
        let mut d = [2, 1].into_iter();
        let p = pick(&eps, |_| d.next().unwrap()).unwrap();
        assert_eq!(p.authority.port_u16(), Some(9001));
    }

    #[test]
    fn never_draws_the_same_endpoint_twice() {
        let eps = endpoints(&[0, 0]);
        for first in 0..2 {
            let mut seen = Vec::new();
            let mut d = [first, 0].into_iter();
            pick(&eps, |n| {
                let v = d.next().unwrap();
                seen.push((n, v));
                v
            });
            assert_eq!(seen, vec![(2, first), (1, 0)]);
        }
        assert!(pick(&[], |_| 0).is_none());
        assert_eq!(
            pick(&eps[..1], |_| 7).unwrap().authority.port_u16(),
            Some(9000)
        );
    }

    #[test]
    fn ejected_endpoints_are_left_out_unless_all_are() {
        let eps = endpoints(&[0, 0, 0]);
        let policy = crate::upstream::health::EjectionPolicy {
            after_failures: 1,
            ..Default::default()
        };
        eps[0].health.failure(0, &policy, true);
        eps[1].health.failure(0, &policy, true);
        for draw in 0..3 {
            let p = pick_available(&eps, 1, |n| draw % n).unwrap();
            assert_eq!(p.authority.port_u16(), Some(9002));
        }
        eps[2].health.failure(0, &policy, true);
        assert!(
            pick_available(&eps, 1, |_| 0).is_some(),
            "all ejected: still one is picked"
        );
    }

    #[test]
    fn in_flight_guard_counts_while_alive() {
        let eps = endpoints(&[0]);
        let g = InFlight::start(&eps[0]);
        assert_eq!(eps[0].in_flight.load(Relaxed), 1);
        drop(g);
        assert_eq!(eps[0].in_flight.load(Relaxed), 0);
    }
}
