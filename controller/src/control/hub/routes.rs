//! The route table the controller serves: each route with its backends, the generation of
//! each, the next generation to give, and the revisions a report may count per route. Pure:
//! publishing is staged (the caller writes [`Staged::bytes`] to disk first) and committed
//! after, so nothing here waits on a disk.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_api::protocol::Snapshot;
use sluice_api::table::{BackendSpec, RouteSpec, TableSpec};

/// How far a table opened on a persisted state starts past its last persisted generation: an
/// abort is published even when the disk refuses to keep it, and the generation it used must
/// never be given again to another table after a restart.
pub const RESTART_GAP: u64 = 1_000;
/// Revisions of a route whose counters a report may carry: the current ones and those
/// published before them, so that a proxy a generation behind is not refused.
const KNOWN_REVISIONS: usize = 16;

/// A route and the backends it uses.
pub type Published = (RouteSpec, Vec<BackendSpec>);

/// What is kept on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    next_generation: u64,
    /// The table's generation, when a withdrawal made it newer than every route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    routes: BTreeMap<String, Published>,
}

/// The table.
#[derive(Debug)]
pub struct Routes {
    next_generation: u64,
    generation: u64,
    routes: BTreeMap<String, Published>,
    /// Per route, the revisions a report may count, newest last.
    known: BTreeMap<String, VecDeque<String>>,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            next_generation: 1,
            generation: 0,
            routes: BTreeMap::new(),
            known: BTreeMap::new(),
        }
    }
}

/// A publication ready to be written, then committed.
#[derive(Debug)]
pub struct Staged {
    /// The route, numbered.
    route: RouteSpec,
    backends: Vec<BackendSpec>,
    /// What to write to disk before the route is served.
    pub bytes: Vec<u8>,
}

impl Staged {
    /// The route's name.
    pub fn route_name(&self) -> &str {
        &self.route.name
    }

    /// The route.
    pub fn route(&self) -> &RouteSpec {
        &self.route
    }
}

/// The canary's share of a route, in percent.
pub fn share_of(r: &RouteSpec) -> f64 {
    if r.canary.is_none() || r.total == 0 {
        0.0
    } else {
        f64::from(r.weight) * 100.0 / f64::from(r.total)
    }
}

/// A route's removal ready to be written, then committed.
#[derive(Debug)]
pub struct Withdrawal {
    name: String,
    /// What to write to disk before the table without the route is served.
    pub bytes: Vec<u8>,
}

impl Routes {
    /// The table as it was persisted (`bytes`), restarting [`RESTART_GAP`] past it.
    pub fn from_persisted(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let p: Persisted = serde_json::from_slice(bytes)?;
        let mut routes = Self {
            next_generation: p.next_generation.max(1).saturating_add(RESTART_GAP),
            generation: p
                .routes
                .values()
                .filter_map(|(r, _)| r.generation)
                .chain(p.generation)
                .max()
                .unwrap_or(0),
            routes: p.routes,
            known: BTreeMap::new(),
        };
        let all: Vec<(String, Vec<BackendSpec>)> = routes
            .routes
            .iter()
            .map(|(n, (_, b))| (n.clone(), b.clone()))
            .collect();
        for (name, backends) in all {
            routes.learn(&name, &backends);
        }
        Ok(routes)
    }

    /// Remembers the revisions of a route's backends as ones a report may count.
    fn learn(&mut self, route: &str, backends: &[BackendSpec]) {
        let known = self.known.entry(route.to_owned()).or_default();
        for b in backends {
            let rev = b.revision.clone().unwrap_or_else(|| b.name.clone());
            known.retain(|r| *r != rev);
            known.push_back(rev);
        }
        while known.len() > KNOWN_REVISIONS {
            known.pop_front();
        }
    }

    /// Prepares `route`: `Err(generation)` when it is what is served already, else the
    /// numbered route and the bytes of the table with it.
    pub fn stage(&self, mut route: RouteSpec, backends: Vec<BackendSpec>) -> Result<Staged, u64> {
        route.generation = None;
        if let Some((old, old_backends)) = self.routes.get(&route.name) {
            let mut o = old.clone();
            let g = o.generation.take();
            if o == route && *old_backends == backends {
                return Err(g.unwrap_or(0));
            }
        }
        route.generation = Some(self.next_generation);
        let mut routes = self.routes.clone();
        routes.insert(route.name.clone(), (route.clone(), backends.clone()));
        let bytes = serde_json::to_vec(&Persisted {
            next_generation: self.next_generation + 1,
            generation: None,
            routes,
        })
        .unwrap_or_default();
        Ok(Staged {
            route,
            backends,
            bytes,
        })
    }

    /// Serves a staged route. A stage taken before another commit is numbered again, so
    /// generations only grow.
    pub fn commit(&mut self, mut staged: Staged) -> u64 {
        let generation = self.next_generation;
        staged.route.generation = Some(generation);
        let name = staged.route.name.clone();
        self.learn(&name, &staged.backends);
        self.routes.insert(name, (staged.route, staged.backends));
        self.next_generation += 1;
        self.generation = generation;
        generation
    }

    /// Prepares the removal of route `name` (its rollout is gone): `None` when it is not
    /// served; else the bytes of the table without it, at a new generation.
    pub fn stage_withdrawal(&self, name: &str) -> Option<Withdrawal> {
        if !self.routes.contains_key(name) {
            return None;
        }
        let mut routes = self.routes.clone();
        routes.remove(name);
        let bytes = serde_json::to_vec(&Persisted {
            next_generation: self.next_generation + 1,
            generation: Some(self.next_generation),
            routes,
        })
        .unwrap_or_default();
        Some(Withdrawal {
            name: name.to_owned(),
            bytes,
        })
    }

    /// Serves the table without a withdrawn route, at a new generation; returns it.
    pub fn commit_withdrawal(&mut self, withdrawal: Withdrawal) -> u64 {
        let generation = self.next_generation;
        self.routes.remove(&withdrawal.name);
        self.known.remove(&withdrawal.name);
        self.next_generation += 1;
        self.generation = generation;
        generation
    }

    /// The names of the routes served.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The whole table now.
    pub fn snapshot(&self) -> Snapshot {
        let mut backends: BTreeMap<String, BackendSpec> = BTreeMap::new();
        let mut routes = Vec::new();
        for (route, bs) in self.routes.values() {
            routes.push(route.clone());
            for b in bs {
                backends.entry(b.name.clone()).or_insert_with(|| b.clone());
            }
        }
        Snapshot {
            generation: self.generation,
            table: TableSpec {
                backends: backends.into_values().collect(),
                routes,
            },
        }
    }

    /// What a proxy that applied the table at `generation` holds of the table now: the routes
    /// not published again since, at their generation (a table is applied whole).
    pub fn unchanged_since(&self, generation: u64) -> impl Iterator<Item = (&str, u64)> {
        self.routes
            .iter()
            .filter_map(|(name, (route, _))| Some((name.as_str(), route.generation?)))
            .filter(move |(_, g)| *g <= generation)
    }

    /// A route, with its backends.
    pub fn get(&self, name: &str) -> Option<&Published> {
        self.routes.get(name)
    }

    /// The table's generation (the newest route's).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `g` was given to a route already.
    pub fn was_given(&self, g: u64) -> bool {
        g < self.next_generation
    }

    /// Whether a route of that name is served.
    pub fn has(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// The revisions a report may count for `route`; `None` for a route never served.
    pub fn known(&self, route: &str) -> Option<&VecDeque<String>> {
        self.known.get(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(weight: u32) -> RouteSpec {
        RouteSpec::new("r", "a").with_canary("b", weight)
    }

    #[test]
    fn a_withdrawn_route_leaves_the_table_at_a_newer_generation_that_a_restart_keeps() {
        let mut t = Routes::default();
        let a = t.stage(route(20), vec![]).unwrap();
        let ga = t.commit(a);
        let other = t
            .stage(RouteSpec::new("s", "a").with_canary("b", 5), vec![])
            .unwrap();
        t.commit(other);
        assert!(t.stage_withdrawal("missing").is_none());
        let w = t.stage_withdrawal("r").expect("r is served");
        let bytes = w.bytes.clone();
        let g = t.commit_withdrawal(w);
        assert!(g > ga);
        assert_eq!(t.generation(), g);
        assert!(!t.has("r") && t.known("r").is_none());
        let snap = t.snapshot();
        let names: Vec<&str> = snap.table.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["s"]);
        let reopened = Routes::from_persisted(&bytes).unwrap();
        assert!(!reopened.has("r") && reopened.has("s"));
        assert_eq!(
            reopened.generation(),
            g,
            "the table's generation survives a restart"
        );
        assert!(reopened.was_given(g), "its generation is never given again");
    }

    #[test]
    fn a_stage_committed_after_another_is_numbered_past_it() {
        let mut t = Routes::default();
        let a = t.stage(route(10), vec![]).unwrap();
        let b = t.stage(route(20), vec![]).unwrap();
        assert_eq!((a.route.generation, b.route.generation), (Some(1), Some(1)));
        assert_eq!(t.commit(a), 1);
        assert_eq!(t.commit(b), 2);
        assert_eq!(t.generation(), 2);
        assert_eq!(t.get("r").unwrap().0.weight, 20);
        assert_eq!(t.stage(route(20), vec![]).unwrap_err(), 2, "unchanged");
    }

    #[test]
    fn the_staged_bytes_hold_the_table_with_the_new_route() {
        let t = Routes::default();
        let s = t.stage(route(30), vec![]).unwrap();
        let back = Routes::from_persisted(&s.bytes).unwrap();
        assert_eq!(back.get("r").unwrap().0.weight, 30);
        assert_eq!(back.generation(), 1);
        assert!(back.was_given(1 + RESTART_GAP));
        assert!(!back.was_given(2 + RESTART_GAP));
    }
}
