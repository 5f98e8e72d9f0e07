//! A worker's opponent: answers the head's prompts with the head's job's model, built from the
//! job config the head sends (`crate::models::opponent::opponent_for`, as the head builds its
//! own), loading each published version from the head's run folder (a shared filesystem).
//! Samples are seeded per (example, round, sample), so they are the ones the head would draw.

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

impl Actor for GeneratorHost {
    type Msg = GeneratorHostMsg;
    type State = Option<Loaded>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Option<Loaded>, ActorProcessingErr> {
        ractor::pg::join(
            crate::fleet::GENERATORS_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        Ok(None)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Option<Loaded>,
    ) -> Result<(), ActorProcessingErr> {
        let GeneratorHostMsg::Generate(bytes, reply) = msg;
        let held = state.take();
        let (held, answer) =
            tokio::task::spawn_blocking(move || generate_request(&bytes, held)).await?;
        *state = held;
        let _ = reply.send(wire::encode(&answer));
        Ok(())
    }
}

/// The reply to one encoded [`GenerateRequest`], with the opponent to keep for the next one.
pub fn generate_request(bytes: &[u8], held: Option<Loaded>) -> (Option<Loaded>, GenerateReply) {
    let request: GenerateRequest = match wire::decode(bytes) {
        Ok(r) => r,
        Err(e) => return (held, GenerateReply::Refused(e.to_string())),
    };
    let job = (
        hex::encode(Sha256::digest(request.config_toml.as_bytes())),
        request.run_dir.clone(),
    );
    let mut loaded = match held {
        Some(l) if l.job == job => l,
        _ => {
            let built = toml::from_str::<JobConfig>(&request.config_toml)
                .map_err(anyhow::Error::from)
                .and_then(|config| {
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
        metrics::histogram!("exspin_fleet_weight_sync_seconds").record(took);
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
                GenerateReply::Samples(samples)
            }
            Err(e) => GenerateReply::Refused(format!("generating: {e:#}")),
        };
    (Some(loaded), reply)
}
