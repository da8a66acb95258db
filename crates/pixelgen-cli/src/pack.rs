//! `pixelgen pack`: every asset of a manifest, skipping what is up to date.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pixelgen::{CachedEngine, Control, DiskCache, Generator, ModelSource, Plan, Recipe};

use crate::Result;
use crate::engine::{model_config, model_source, parse_device, step_bar};
use crate::manifest::{self, Loaded};

/// Build every asset of a manifest (RON or TOML), skipping what is up to date.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Build every asset of an asset-pack manifest, skipping what is up to date.\n\n\
        A manifest (RON, or TOML when its name ends in .toml) names an assets folder, recipe \
        defaults and a list of items, each an output path under the assets folder with recipe \
        fields (or a `recipe` file). Each item's recipe is the defaults with its fields over \
        them; a random seed is fixed from the recipe's content, so every run plans the same \
        recipe. An item whose ASSETS/PATH.png exists beside a recipe sidecar equal to the \
        planned recipe is up to date and skipped; one the disk cache (.pixelgen/cache next to \
        the manifest) has is written from it without running the model.\n\n\
        Every file is written atomically, recipe first and PNG last: after Ctrl-C or a crash \
        nothing is half-written and the next run goes on with what is left. One GPU runs one \
        job at a time.",
    after_help = "Examples:\n  \
        pixelgen pack assets.pack.ron --dry-run\n  \
        pixelgen pack assets.pack.toml --model pixel-art-fast --device cuda\n\n\
        Manifest format and examples: docs/cli.md"
)]
pub struct Args {
    /// The manifest: `.ron` (or any other name) as RON, `.toml` as TOML.
    pub manifest: PathBuf,
    /// List each item as `up to date`, `missing` or `changed: FIELDS`, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Jobs at a time. Accepted for scripts; jobs run one at a time (one model in memory,
    /// whose own maths already uses every CPU core or the whole GPU).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// Where the model runs: auto (CUDA in a CUDA build), cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,
    /// The model for every item (overrides the manifest's `model`): a folder or registry name.
    #[arg(long, value_name = "DIR|NAME")]
    pub model: Option<String>,
    /// Do not use the disk cache (.pixelgen/cache next to the manifest).
    #[arg(long)]
    pub no_cache: bool,
}

/// What an item needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Its PNG and a recipe equal to the planned one are there.
    UpToDate,
    /// Its PNG (or its recipe) is not there.
    Missing,
    /// Its recipe differs from the planned one in these fields.
    Changed(Vec<String>),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::UpToDate => write!(f, "up to date"),
            Status::Missing => write!(f, "missing"),
            Status::Changed(fields) => write!(f, "changed: {}", fields.join(", ")),
        }
    }
}

/// One planned item.
struct Job {
    index: usize,
    name: String,
    source: ModelSource,
    plan: Plan,
    /// Output folder and file stem.
    dir: PathBuf,
    stem: String,
    status: Status,
}

/// The top-level fields in which two recipes differ (by their serialized form).
pub fn changed_fields(old: &Recipe, new: &Recipe) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["recipe".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// The status of an output `DIR/STEM.png` planned with `planned`.
fn status(dir: &Path, stem: &str, planned: &Recipe) -> Status {
    let png = dir.join(format!("{stem}.png"));
    let sidecar = dir.join(format!("{stem}.pixelgen.ron"));
    if !png.is_file() {
        return Status::Missing;
    }
    let Some(old) = std::fs::read_to_string(&sidecar)
        .ok()
        .and_then(|t| Recipe::from_ron(&t).ok())
    else {
        return Status::Missing;
    };
    if &old == planned {
        Status::UpToDate
    } else {
        match changed_fields(&old, planned) {
            f if f.is_empty() => Status::Changed(vec!["recipe".into()]),
            f => Status::Changed(f),
        }
    }
}

/// Plans every item of `m`: recipe, model, seed fixed from content, status.
fn plan_all(m: &Loaded, model: Option<&str>) -> Result<Vec<Job>> {
    // `--model`, else the manifest's (a folder relative to the manifest), else the recipe's.
    let overall = match (model, &m.manifest.model) {
        (Some(name), _) => Some(model_source(name)?),
        (None, Some(name)) => {
            let local = m.dir.join(name);
            Some(if local.exists() {
                ModelSource::local(local)
            } else {
                model_source(name)
                    .map_err(|e| format!("{}:{}: {e}", m.path.display(), m.key_line("model")))?
            })
        }
        (None, None) => None,
    };
    let mut jobs = Vec::with_capacity(m.manifest.items.len());
    for i in 0..m.manifest.items.len() {
        let mut recipe = m.recipe(i)?;
        let source = match (&overall, &recipe.model) {
            (Some(s), _) => s.clone(),
            (None, Some(name)) => model_source(name).map_err(|e| m.item_error(i, e))?,
            (None, None) => {
                return Err(m.item_error(
                    i,
                    "no model: set `model` in the manifest or the item, or pass --model",
                ));
            }
        };
        recipe.model = match &source {
            ModelSource::Registry(name) => Some(name.clone()),
            ModelSource::Local(_) => None,
        };
        let plan = Plan::with_content_seed(recipe).map_err(|e| m.item_error(i, e))?;
        let out = m.output(i);
        let stem = out
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
        let status = status(&dir, &stem, plan.recipe());
        jobs.push(Job {
            index: i,
            name: m.manifest.items[i].name.clone(),
            source,
            plan,
            dir,
            stem,
            status,
        });
    }
    Ok(jobs)
}

/// Prints above the bars when they are drawn, on stdout otherwise.
fn say(bars: &MultiProgress, line: String) {
    if bars.is_hidden() {
        println!("{line}");
    } else {
        let _ = bars.println(line);
    }
}

/// Runs `pixelgen pack`.
pub fn run(args: &Args) -> Result<()> {
    let start = Instant::now();
    if args.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let device = parse_device(&args.device)?;
    let m = manifest::load(&args.manifest)?;
    let jobs = plan_all(&m, args.model.as_deref())?;
    let todo: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.status != Status::UpToDate)
        .collect();
    if args.dry_run {
        for j in &jobs {
            println!("{}: {}", j.name, j.status);
        }
        println!(
            "{} items: {} up to date, {} to make (dry run: nothing made)",
            jobs.len(),
            jobs.len() - todo.len(),
            todo.len()
        );
        return Ok(());
    }
    if !todo.is_empty() {
        // An unwritable assets folder fails now, not after the first job's model work.
        crate::generate::probe_writable(&m.assets())
            .map_err(|e| format!("{}:{}: {e}", m.path.display(), m.key_line("assets")))?;
    }
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let overall = bars.add(ProgressBar::new(todo.len() as u64));
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {pos}/{len} items {elapsed} ETA {eta}",
    ) {
        overall.set_style(style.progress_chars("##-"));
    }
    overall.set_prefix("pack");
    crate::engine::tick(&overall);
    let cache = (!args.no_cache).then(|| DiskCache::new(m.dir.join(".pixelgen/cache")));
    let mut engines: HashMap<ModelSource, CachedEngine<Generator>> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let (mut made, mut from_cache) = (0usize, 0usize);
    for job in &todo {
        let engine = engines.entry(job.source.clone()).or_insert_with(|| {
            let e = CachedEngine::new(Generator::new(model_config(job.source.clone(), device)));
            match &cache {
                Some(c) => e.with_disk_cache(c.clone()),
                None => e,
            }
        });
        let bar = bars.insert_before(
            &overall,
            step_bar(&job.name, job.plan.recipe().steps_or_default() as u64),
        );
        crate::engine::tick(&bar);
        let result = engine.run(&job.plan, &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.step as u64);
            Control::Continue
        });
        bar.finish_and_clear();
        bars.remove(&bar);
        let saved = result.and_then(|g| {
            pixelgen::save_as(&job.dir, &job.stem, g.artwork(), true).map(|s| (g, s))
        });
        match saved {
            Ok((g, s)) => {
                if g.from_cache {
                    from_cache += 1;
                } else {
                    made += 1;
                }
                let how = if g.from_cache {
                    "from the cache"
                } else {
                    "made"
                };
                say(
                    &bars,
                    format!(
                        "{} ({}): {how} in {:.2} s -> {}",
                        job.name,
                        job.status,
                        g.elapsed.as_secs_f64(),
                        s.png.display()
                    ),
                );
                if let (Some(out), Some(set)) = (&g.tileset, &g.recipe.tileset)
                    && !out.seams.passed()
                {
                    say(
                        &bars,
                        format!("{}: warning: {}", job.name, out.summary(set.seam_threshold)),
                    );
                }
            }
            // The model or device cannot load: every other job would fail the same way.
            Err(
                e @ (pixelgen::PixelGenError::ModelLoad { .. }
                | pixelgen::PixelGenError::ModelIdentity { .. }
                | pixelgen::PixelGenError::Device { .. }),
            ) => {
                overall.finish_and_clear();
                return Err(e.into());
            }
            Err(e) => {
                let line = m.item_error(job.index, &e).to_string();
                say(&bars, format!("failed: {line}"));
                failed.push(line);
            }
        }
        overall.inc(1);
    }
    overall.finish_and_clear();
    println!(
        "{} items: {} up to date, {made} made, {from_cache} from the cache, {} failed ({:.2} s)",
        jobs.len(),
        jobs.len() - todo.len(),
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    match failed.first() {
        None => Ok(()),
        Some(first) if failed.len() == 1 => Err(first.clone().into()),
        Some(first) => Err(format!("{} items failed; the first: {first}", failed.len()).into()),
    }
}
