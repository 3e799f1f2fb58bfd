//! A whole plan collected in memory: loadgen streams its plan, the lab's harnesses (chaos,
//! raw) want every request and every distinct event at hand, which is fine for their short
//! plans. Built from loadgen's own generator, so the events are the same bytes.

use std::sync::Arc;

use anyhow::{Result, bail};
use bytes::Bytes;
use loadgen::plan::{Events, Generator, PlanParams, PlannedEvent, PlannedRequest, Shape};

/// A whole plan collected in memory, for the harnesses' short plans.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The run id the topics are prefixed with.
    pub run_id: String,
    /// Topic names, `<run_id>.t<k>`.
    pub topics: Vec<String>,
    /// The distinct events, in order of first appearance.
    pub events: Vec<PlannedEvent>,
    /// The requests, in the order workers pick them up.
    pub requests: Vec<PlannedRequest>,
    factory: Arc<Events>,
}

impl Plan {
    /// Builds the whole plan of `p`, which must have a fixed event count.
    pub fn generate(p: &PlanParams) -> Result<Plan> {
        if p.events.is_none() {
            bail!("a plan collected in memory needs a fixed number of events");
        }
        let mut generator = Generator::new(p);
        let requests: Vec<PlannedRequest> = generator.by_ref().collect();
        let factory = Arc::clone(generator.events());
        Ok(Plan {
            run_id: p.run_id.clone(),
            topics: factory.topics().to_vec(),
            events: (0..generator.distinct())
                .map(|i| factory.event(i))
                .collect(),
            requests,
            factory,
        })
    }

    /// The exact body of a request (also used for its retries, so they are byte-identical).
    pub fn body(&self, req: &PlannedRequest) -> Bytes {
        self.factory.body(req)
    }

    /// The whole plan of `shape` under the topic prefix `run_id`, with the seed it used.
    pub fn of_shape(shape: &Shape, run_id: &str) -> Result<(Plan, u64)> {
        let params = shape.params(run_id)?;
        Ok((Plan::generate(&params)?, params.seed))
    }
}
