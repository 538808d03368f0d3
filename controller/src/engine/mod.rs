//! The rollout engine: one pure function from (spec, status, observations, now) to (new status,
//! effects, when to look again). Both runtimes drive it; neither adds rules of its own.
//!
//! Guarantees, each tested in `tests`:
//! - **Acknowledged steps.** A step that changes traffic completes only when the route it
//!   needs was published and every expected proxy (at least one) applied it. Zero expected
//!   proxies never complete a step. Waiting for acknowledgements counts toward the progress
//!   deadline.
//! - **Abort is never gated.** Whatever the state, the decision after an abort publishes a
//!   route with no canary; the status shows when every proxy acknowledged it.
//! - **Availability gate.** Weight never moves up to a revision without healthy endpoints.
//! - **Promotion order.** Canary 100 % → acknowledged → the stable role moves to the new
//!   revision → acknowledged → the old revision is scaled down after its delay and once
//!   nothing is in flight to it.
//! - **Time is an input.** A timed pause starts when the weight before it is acknowledged
//!   (its start is in the status), so after a restart it resumes with its remaining time.
//! - **Deterministic.** The same inputs always give the same outputs.

mod bluegreen;
mod canary;
mod context;
mod model;
pub mod route;

pub use model::*;
pub use route::RouteIntent;

/// Decides the next step of a rollout.
pub fn decide(input: &Input<'_>) -> Decision {
    let mut ctx = context::Ctx::new(input);
    ctx.start();
    if input.spec.strategy.blue_green.is_some() {
        bluegreen::run(&mut ctx);
    } else {
        canary::run(&mut ctx);
    }
    ctx.finish()
}

#[cfg(test)]
mod tests;
