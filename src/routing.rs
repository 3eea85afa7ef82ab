//! Which model answers which call (pure): the root model for the root run's conversation, the
//! sub-model (per depth) for `llm_query` and child runs, and the host-side check of a model
//! the REPL asks for with `llm_query(prompt, model=...)`.

use crate::config::Config;
use crate::prompt;

/// Which client carries a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// The root model's client.
    Root,
    /// The sub-model's client.
    Sub,
}

/// A call's client and the model to ask it for (`None`: the client's own model).
pub(crate) type Route = (Client, Option<String>);

/// The sub-model of level `level` (1 = the root's sub-calls), the last one for deeper
/// levels.
fn sub_model(cfg: &Config, level: u32) -> Option<String> {
    let sub = cfg.sub.as_ref()?;
    let i = (level.max(1) as usize - 1).min(sub.models.len() - 1);
    Some(sub.models[i].clone())
}

/// The model of the conversation of a run at `depth` (the root at 0, child runs below it).
pub(crate) fn for_run(cfg: &Config, depth: u32) -> Route {
    match sub_model(cfg, depth) {
        Some(m) if depth > 0 => (Client::Sub, Some(m)),
        _ => (Client::Root, None),
    }
}

/// The route of an `llm_query` made by a run at `depth`, asking for `requested` (checked
/// against the allowed models: the root model, the sub-models and `RLM_ALLOWED_MODELS`).
/// Anything else is refused with the text the REPL sees.
pub(crate) fn for_subcall(
    cfg: &Config,
    root_model: &str,
    depth: u32,
    requested: Option<&str>,
) -> Result<Route, String> {
    let sub = cfg.sub.as_ref();
    let Some(m) = requested else {
        return Ok(match sub_model(cfg, depth + 1) {
            Some(m) => (Client::Sub, Some(m)),
            None => (Client::Root, None),
        });
    };
    if m == root_model {
        return Ok((Client::Root, None));
    }
    if sub.is_some_and(|s| s.models.iter().any(|x| x == m)) {
        return Ok((Client::Sub, Some(m.to_string())));
    }
    if cfg.llm.allowed_models.iter().any(|a| a == m) {
        // Extra models are sub-call models: with a sub-model connection they go there.
        let client = if sub.is_some() {
            Client::Sub
        } else {
            Client::Root
        };
        return Ok((client, Some(m.to_string())));
    }
    let mut allowed: Vec<&str> = vec![root_model];
    for x in sub
        .map(|s| s.models.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(&cfg.llm.allowed_models)
    {
        if !allowed.contains(&x.as_str()) {
            allowed.push(x);
        }
    }
    Err(prompt::model_not_allowed(m, &allowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SubModels;

    fn cfg(models: &[&str], allowed: &[&str]) -> Config {
        let mut c = Config::defaults();
        c.llm.allowed_models = allowed.iter().map(|s| s.to_string()).collect();
        if !models.is_empty() {
            c.sub = Some(SubModels {
                models: models.iter().map(|s| s.to_string()).collect(),
                llm: c.llm.clone(),
            });
        }
        c
    }

    #[test]
    fn without_a_sub_model_everything_is_the_root() {
        let c = cfg(&[], &["extra"]);
        assert_eq!(for_run(&c, 0), (Client::Root, None));
        assert_eq!(for_run(&c, 2), (Client::Root, None));
        assert_eq!(
            for_subcall(&c, "big", 0, None).unwrap(),
            (Client::Root, None)
        );
        assert_eq!(
            for_subcall(&c, "big", 0, Some("extra")).unwrap(),
            (Client::Root, Some("extra".into()))
        );
        let e = for_subcall(&c, "big", 0, Some("other")).unwrap_err();
        assert!(e.contains("\"other\"") && e.contains("big, extra"), "{e}");
    }

    #[test]
    fn sub_models_by_depth_the_last_repeating() {
        let c = cfg(&["s1", "s2"], &["extra"]);
        let sub = |m: &str| (Client::Sub, Some(m.to_string()));
        assert_eq!(for_run(&c, 0), (Client::Root, None));
        assert_eq!(for_run(&c, 1), sub("s1"));
        assert_eq!(for_run(&c, 2), sub("s2"));
        assert_eq!(for_run(&c, 5), sub("s2"));
        assert_eq!(for_subcall(&c, "big", 0, None).unwrap(), sub("s1"));
        assert_eq!(for_subcall(&c, "big", 1, None).unwrap(), sub("s2"));
        assert_eq!(for_subcall(&c, "big", 7, None).unwrap(), sub("s2"));
        // Picking among the allowed models.
        assert_eq!(
            for_subcall(&c, "big", 0, Some("big")).unwrap(),
            (Client::Root, None)
        );
        assert_eq!(for_subcall(&c, "big", 0, Some("s2")).unwrap(), sub("s2"));
        assert_eq!(
            for_subcall(&c, "big", 0, Some("extra")).unwrap(),
            sub("extra")
        );
        let e = for_subcall(&c, "big", 0, Some("gpt-5")).unwrap_err();
        assert!(e.contains("big, s1, s2, extra"), "{e}");
    }
}
