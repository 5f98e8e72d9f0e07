//! A worker's opponent: answers the head's prompts with the head's job's model, built from the
//! job config the head sends (`crate::models::opponent::opponent_for`, as the head builds its
//! own), loading each published version from the head's run folder (a shared filesystem), or
//! from this worker's copy of it, fetched over the link (`--fetch-weights`, [`local_copy`]).
//! Samples are seeded per (example, round, sample), so they are the ones the head would draw.

use std::collections::HashSet;
use std::path::PathBuf;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::{Digest, Sha256};

use crate::config::JobConfig;
use crate::fleet::wire::{self, GenerateReply, GenerateRequest, GeneratorHostMsg};
use crate::protocol::seams::Generator;

pub struct GeneratorHost;

/// The opponent built for one job, and the version it holds.
pub struct Loaded {
    job: (String, PathBuf),
    generator: Box<dyn Generator>,
    version: u64,
}

/// How a worker's opponents get their weights and where they run.
#[derive(Debug, Clone, Default)]
pub struct GeneratorHostArgs {
    /// Where this worker copies the head's published weights (`--fetch-weights`); None: it reads
    /// the head's run folder on a shared filesystem.
    pub fetch_into: Option<PathBuf>,
    /// The device this worker's opponents run on (`--device`); None: the job's `model.device`.
    pub device: Option<crate::config::DeviceSpec>,
}

pub struct HostState {
    loaded: Option<Loaded>,
    fetch_into: Option<PathBuf>,
    device: Option<crate::config::DeviceSpec>,
    /// (job, version) folders copied already.
    mirrored: HashSet<(String, u64)>,
}

impl Actor for GeneratorHost {
    type Msg = GeneratorHostMsg;
    type State = HostState;
    type Arguments = GeneratorHostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GeneratorHostArgs,
    ) -> Result<HostState, ActorProcessingErr> {
        ractor::pg::join(
            crate::fleet::GENERATORS_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        Ok(HostState {
            loaded: None,
            fetch_into: args.fetch_into,
            device: args.device,
            mirrored: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        let GeneratorHostMsg::Generate(bytes, reply) = msg;
        let request = match wire::decode::<GenerateRequest>(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(wire::encode(&GenerateReply::Refused(e.to_string())));
                return Ok(());
            }
        };
        let (request, copy_s) = match &state.fetch_into {
            None => (request, 0.0),
            Some(cache) => {
                let cache = cache.clone();
                match local_copy(request, &cache, &mut state.mirrored).await {
                    Ok(copied) => copied,
                    Err(e) => {
                        let why = format!("copying the weights from the head: {e:#}");
                        let _ = reply.send(wire::encode(&GenerateReply::Refused(why)));
                        return Ok(());
                    }
                }
            }
        };
        let held = state.loaded.take();
        let device = state.device;
        let (held, mut answer) =
            tokio::task::spawn_blocking(move || generate_request(request, device, held)).await?;
        state.loaded = held;
        if let GenerateReply::Samples { weight_sync_s, .. } = &mut answer {
            *weight_sync_s += copy_s;
        }
        let _ = reply.send(wire::encode(&answer));
        Ok(())
    }
}

/// `request` pointed at this worker's copy of the head's run folder under `cache` (one folder per
/// job), after copying what its version needs over the link: the model's metadata, version 0
/// (what an opponent is built from) and the requested version (a LoRA run's: its adapter
/// alone). The seconds it takes are the worker's weight-sync time.
async fn local_copy(
    mut request: GenerateRequest,
    cache: &std::path::Path,
    mirrored: &mut HashSet<(String, u64)>,
) -> anyhow::Result<(GenerateRequest, f64)> {
    let job = hex::encode(Sha256::digest(
        format!("{}\n{}", request.config_toml, request.run_dir.display()).as_bytes(),
    ))[..16]
        .to_string();
    let root = cache.join(&job);
    let version = request.weights.version;
    // A LoRA run's versions travel as their adapters alone (`weights/vN-adapter`), merged onto
    // version 0 here; a full fine-tune's as the whole folder.
    let lora = toml::from_str::<JobConfig>(&request.config_toml)?
        .model
        .lora
        .is_some();
    let folder_of = |v: u64| match (v, lora) {
        (0, _) => "weights/v0".to_string(),
        (v, true) => format!("weights/v{v}-adapter"),
        (v, false) => format!("weights/v{v}"),
    };
    let mut took = 0.0;
    if request.weights.path.is_some() && !mirrored.contains(&(job.clone(), version)) {
        let started = std::time::Instant::now();
        let mut folders = vec!["weights".to_string(), folder_of(0)];
        if version != 0 {
            folders.push(folder_of(version));
        }
        let mut bytes = 0;
        for folder in &folders {
            if folder == "weights/v0" && mirrored.iter().any(|(j, _)| *j == job) {
                continue;
            }
            bytes += crate::fleet::weights::mirror(folder, &root).await?.bytes;
        }
        took = started.elapsed().as_secs_f64();
        metrics::histogram!("exspin_fleet_weight_copy_seconds").record(took);
        tracing::info!(
            "fleet: version {version} copied from the head in {took:.2} s ({:.1} MB)",
            bytes as f64 / 1e6
        );
        mirrored.insert((job, version));
    }
    request.weights.path = request
        .weights
        .path
        .as_ref()
        .map(|_| root.join(folder_of(version)));
    request.run_dir = root;
    Ok((request, took))
}

/// The reply to one [`GenerateRequest`] (on `device` when given, else the job's), with the
/// opponent to keep for the next one.
pub fn generate_request(
    request: GenerateRequest,
    device: Option<crate::config::DeviceSpec>,
    held: Option<Loaded>,
) -> (Option<Loaded>, GenerateReply) {
    let job = (
        hex::encode(Sha256::digest(request.config_toml.as_bytes())),
        request.run_dir.clone(),
    );
    let mut loaded = match held {
        Some(l) if l.job == job => l,
        _ => {
            let built = toml::from_str::<JobConfig>(&request.config_toml)
                .map_err(anyhow::Error::from)
                .and_then(|mut config| {
                    if let Some(d) = device {
                        config.model.device = d;
                    }
                    crate::models::opponent::opponent_for(&config, &request.run_dir, None)
                });
            match built {
                Ok(generator) => Loaded {
                    job,
                    generator,
                    version: 0,
                },
                Err(e) => {
                    return (
                        None,
                        GenerateReply::Refused(format!("building the job's opponent: {e:#}")),
                    );
                }
            }
        }
    };
    let mut weight_sync_s = 0.0;
    if loaded.version != request.weights.version {
        let started = std::time::Instant::now();
        if let Err(e) = loaded.generator.load_version(&request.weights) {
            return (
                None,
                GenerateReply::Refused(format!(
                    "loading version {}: {e:#}",
                    request.weights.version
                )),
            );
        }
        loaded.version = request.weights.version;
        // The weight sync of a worker that reads the run folder: from the request to the
        // version loaded.
        let took = started.elapsed().as_secs_f64();
        weight_sync_s = took;
        metrics::histogram!("exspin_fleet_weight_load_seconds").record(took);
        tracing::info!(
            "fleet: version {} loaded in {took:.2} s",
            request.weights.version
        );
    }
    let reply =
        match loaded
            .generator
            .generate(&request.batch, request.n_samples, request.weights.version)
        {
            Ok(samples) => {
                metrics::counter!("exspin_fleet_generated_total").increment(samples.len() as u64);
                GenerateReply::Samples {
                    samples,
                    weight_sync_s,
                }
            }
            Err(e) => GenerateReply::Refused(format!("generating: {e:#}")),
        };
    (Some(loaded), reply)
}
