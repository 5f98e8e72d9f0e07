//! The head's side: the workers' executors in [`super::EXECUTORS_GROUP`], and one batch judged
//! by one of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use exspin::data::Dataset;
use ractor::ActorRef;

use super::db_hash::sha256_of;
use super::wire::{
    self, DbRef, ExecutorHostMsg, GenerateReply, GenerateRequest, GeneratorHostMsg, JudgeReply,
    JudgeRequest,
};
use crate::protocol::seams::{Judged, PromptItem, Sample};

/// The members of process group `group` that live on other nodes, in a stable order.
fn remote_members<M: ractor::Message>(group: &str) -> Vec<ActorRef<M>> {
    let mut remote: Vec<_> = ractor::pg::get_members(&group.to_string())
        .into_iter()
        .filter(|cell| !cell.get_id().is_local())
        .collect();
    remote.sort_by_key(|cell| cell.get_id());
    remote.into_iter().map(ActorRef::from).collect()
}

/// Calls in flight per remote actor (all groups), for least-loaded picking.
static IN_FLIGHT: std::sync::LazyLock<
    parking_lot::Mutex<std::collections::HashMap<ractor::ActorId, usize>>,
> = std::sync::LazyLock::new(Default::default);

/// A remote actor picked for one call; its in-flight count drops when the lease does.
pub struct Lease<M: ractor::Message> {
    pub target: ActorRef<M>,
}

impl<M: ractor::Message> Drop for Lease<M> {
    fn drop(&mut self) {
        let mut map = IN_FLIGHT.lock();
        if let Some(n) = map.get_mut(&self.target.get_id()) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The group's remote member with the fewest calls in flight (ties: round robin), if any.
/// Round robin alone sends two concurrent batches to one worker while another idles.
fn next_remote<M: ractor::Message>(group: &str, next: &AtomicUsize) -> Option<Lease<M>> {
    let all = remote_members::<M>(group);
    metrics::gauge!("exspin_fleet_remote_actors", "group" => group.to_string())
        .set(all.len() as f64);
    if all.is_empty() {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    let mut map = IN_FLIGHT.lock();
    let pick = (0..all.len())
        .map(|i| (start + i) % all.len())
        .min_by_key(|&i| map.get(&all[i].get_id()).copied().unwrap_or(0))
        .expect("not empty");
    *map.entry(all[pick].get_id()).or_insert(0) += 1;
    Some(Lease {
        target: all[pick].clone(),
    })
}

/// `attempt` (a call to the least-loaded worker, None when there is none or it failed) tried
/// every 250 ms until it answers, with `waiting` logged every 30 s: for work this process may not
/// do itself (`[cluster] local_generators` / `local_executors` = 0).
pub async fn until_a_worker_answers<T, F: std::future::Future<Output = Option<T>>>(
    mut attempt: impl FnMut() -> F,
    waiting: impl Fn() -> String,
) -> T {
    const RETRY: Duration = Duration::from_millis(250);
    const SAY_EVERY: Duration = Duration::from_secs(30);
    let mut said = std::time::Instant::now();
    loop {
        if let Some(answer) = attempt().await {
            return answer;
        }
        if said.elapsed() >= SAY_EVERY {
            tracing::warn!("{} for {} s", waiting(), SAY_EVERY.as_secs());
            said = std::time::Instant::now();
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Batches whose worker failed them (died, link dropped, refused) and went elsewhere.
static REISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts a batch re-issued after its worker failed it.
pub fn note_reissued() {
    REISSUED.fetch_add(1, Ordering::Relaxed);
}

/// The fleet in one line for the progress display: the workers' actors now, and what they did
/// (`generated` and `judged`: samples done on workers, from the journal).
pub fn status_line(generated: u64, judged: u64) -> String {
    let nodes: std::collections::BTreeSet<u64> = [super::GENERATORS_GROUP, super::EXECUTORS_GROUP]
        .iter()
        .flat_map(|g| ractor::pg::get_members(&g.to_string()))
        .map(|c| c.get_id())
        .filter(|id| !id.is_local())
        .map(|id| id.node())
        .collect();
    let in_flight: usize = IN_FLIGHT.lock().values().sum();
    format!(
        "{} worker nodes ({} opponents, {} executors), {in_flight} batches in flight; on workers: {generated} samples generated, {judged} judged; {} batches re-issued",
        nodes.len(),
        remote_generator_count(),
        remote_members::<ExecutorHostMsg>(super::EXECUTORS_GROUP).len(),
        REISSUED.load(Ordering::Relaxed)
    )
}

/// The next remote executor (least loaded), if the fleet has one.
pub fn next_remote_executor() -> Option<Lease<ExecutorHostMsg>> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    next_remote(super::EXECUTORS_GROUP, &NEXT)
}

/// How many opponents the fleet's workers host now.
pub fn remote_generator_count() -> usize {
    remote_members::<GeneratorHostMsg>(super::GENERATORS_GROUP).len()
}

/// The next remote opponent (least loaded), if the fleet has one.
pub fn next_remote_generator() -> Option<Lease<GeneratorHostMsg>> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    next_remote(super::GENERATORS_GROUP, &NEXT)
}

/// Sends `request` to a worker's opponent and waits at most `timeout` for its samples, and the
/// seconds the worker spent bringing the version to itself (0: it held it).
pub async fn generate_remote(
    target: &ActorRef<GeneratorHostMsg>,
    request: &GenerateRequest,
    timeout: Duration,
) -> anyhow::Result<(Vec<Sample>, f64)> {
    let node = target.get_id().node().to_string();
    let inflight = metrics::gauge!("exspin_fleet_inflight_prompts", "node" => node);
    inflight.increment(request.batch.len() as f64);
    let reply = ractor::call_t!(
        target,
        GeneratorHostMsg::Generate,
        timeout.as_millis() as u64,
        wire::encode(request)
    )
    .map_err(|e| anyhow::anyhow!("remote opponent {}: {e}", target.get_id()));
    inflight.decrement(request.batch.len() as f64);
    match wire::decode::<GenerateReply>(&reply?)? {
        GenerateReply::Samples {
            samples,
            weight_sync_s,
        } if samples.len() == request.batch.len() * request.n_samples => {
            if weight_sync_s > 0.0 {
                let node = target.get_id().node().to_string();
                metrics::histogram!("exspin_fleet_weight_sync_seconds", "node" => node)
                    .record(weight_sync_s);
            }
            Ok((samples, weight_sync_s))
        }
        GenerateReply::Samples { samples: s, .. } => anyhow::bail!(
            "remote opponent {} returned {} samples for {} prompts × {}",
            target.get_id(),
            s.len(),
            request.batch.len(),
            request.n_samples
        ),
        GenerateReply::Refused(why) => {
            anyhow::bail!("remote opponent {} refused: {why}", target.get_id())
        }
    }
}

/// The request for `items` of `train`: every database they use, by path under the database
/// root and content hash.
pub fn request_for(
    train: &Dataset,
    items: Vec<(PromptItem, Sample)>,
) -> anyhow::Result<JudgeRequest> {
    let mut databases = BTreeMap::new();
    for (p, _) in &items {
        if databases.contains_key(&p.db_id) {
            continue;
        }
        let path = train.db_path(&p.db_id);
        let relative = path
            .strip_prefix(&train.database_root)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} is not under the database root {}",
                    path.display(),
                    train.database_root.display()
                )
            })?
            .to_string_lossy()
            .into_owned();
        let sha256 =
            sha256_of(&path).map_err(|e| anyhow::anyhow!("hashing {}: {e}", path.display()))?;
        databases.insert(p.db_id.clone(), DbRef { relative, sha256 });
    }
    Ok(JudgeRequest {
        dataset: train.kind,
        scope: train.source.display().to_string(),
        databases,
        items,
    })
}

/// Sends `request` to `target` and waits at most `timeout` for its verdicts.
pub async fn judge_remote(
    target: &ActorRef<ExecutorHostMsg>,
    request: &JudgeRequest,
    timeout: Duration,
) -> anyhow::Result<Vec<Judged>> {
    let bytes = wire::encode(request);
    let node = target.get_id().node().to_string();
    let inflight = metrics::gauge!("exspin_fleet_inflight_items", "node" => node);
    inflight.increment(request.items.len() as f64);
    let started = std::time::Instant::now();
    let reply = ractor::call_t!(
        target,
        ExecutorHostMsg::Judge,
        timeout.as_millis() as u64,
        bytes
    )
    .map_err(|e| anyhow::anyhow!("remote executor {}: {e}", target.get_id()));
    inflight.decrement(request.items.len() as f64);
    metrics::histogram!("exspin_fleet_remote_judge_seconds")
        .record(started.elapsed().as_secs_f64());
    let reply = reply?;
    match wire::decode::<JudgeReply>(&reply)? {
        JudgeReply::Judged(j) if j.len() == request.items.len() => Ok(j),
        JudgeReply::Judged(j) => anyhow::bail!(
            "remote executor {} judged {} of {} items",
            target.get_id(),
            j.len(),
            request.items.len()
        ),
        JudgeReply::Refused(why) => {
            anyhow::bail!("remote executor {} refused: {why}", target.get_id())
        }
    }
}
