//! Which partials each template includes, to refuse at load time what would never
//! finish rendering. handlebars catches a partial that names itself, but not two that
//! include each other (`footer` → `signoff` → `footer`): that recursion runs until the
//! stack overflows and the process dies. Partials that fan out (each including the next
//! ten times) are refused too, before their output grows without bound.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use crate::config::{Diagnostic, Location};

/// A template or partial as loaded: its registered name, its file and its text.
pub(super) struct Source {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    pub partial: bool,
}

/// Every way the templates could fail to finish rendering, each at the include that
/// closes a cycle or at the template that fans out.
pub(super) fn diagnose(sources: &[Source]) -> Vec<Diagnostic> {
    let at = |file: &PathBuf, (line, col): (usize, usize)| Location {
        file: file.clone(),
        line,
        col,
    };
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut places: HashMap<(String, String), (usize, usize)> = HashMap::new();
    for source in sources {
        // Syntax errors were reported when the template was registered.
        let Ok(template) = Template::compile(&source.text) else {
            continue;
        };
        match includes(&template) {
            Ok(list) => {
                for include in list {
                    places
                        .entry((source.name.clone(), include.name.clone()))
                        .or_insert(include.at);
                    graph
                        .entry(source.name.clone())
                        .or_default()
                        .push(include.name);
                }
            }
            Err(pos) => {
                push_new(&mut out, Diagnostic {
                    location: at(&source.file, pos),
                    message: "a partial's name must be written out, such as {{> footer}}, so that it can be checked".into(),
                });
            }
        }
    }
    let file_of = |name: &str| sources.iter().find(|s| s.name == name).map(|s| &s.file);
    for root in sources.iter().filter(|s| !s.partial) {
        match check(&root.name, &graph) {
            Some(Problem::Cycle(chain)) => {
                let (first, second) = (&chain[0], &chain[1]);
                let file = file_of(first).unwrap_or(&root.file);
                let pos = places
                    .get(&(first.clone(), second.clone()))
                    .copied()
                    .unwrap_or((1, 1));
                let message = if chain.len() == 2 {
                    format!("partial `{first}` includes itself, so rendering would never end")
                } else {
                    format!(
                        "partials include each other ({}), so rendering would never end",
                        chain.join(" → ")
                    )
                };
                push_new(
                    &mut out,
                    Diagnostic {
                        location: at(file, pos),
                        message,
                    },
                );
            }
            Some(Problem::TooMany(name)) => {
                push_new(
                    &mut out,
                    Diagnostic {
                        location: at(&root.file, (1, 1)),
                        message: format!(
                            "partial `{name}` expands into more than {MAX_EXPANSIONS} partials; a message that large is a mistake"
                        ),
                    },
                );
            }
            None => {}
        }
    }
    out
}

/// Adds `d` unless it is there already (several templates reach the same cycle).
fn push_new(out: &mut Vec<Diagnostic>, d: Diagnostic) {
    if !out.contains(&d) {
        out.push(d);
    }
}

/// More partial expansions than this for one template is a mistake, not a message.
const MAX_EXPANSIONS: u64 = 10_000;

/// A partial included by a template: its name and where the `{{>` is (line, column).
struct Include {
    pub name: String,
    pub at: (usize, usize),
}

/// The partials a template source includes, inline partials (`{{#*inline "x"}}`)
/// included; `Err` names a partial whose name is computed, which cannot be checked.
fn includes(template: &Template) -> Result<Vec<Include>, (usize, usize)> {
    let mut out = Vec::new();
    walk(template, &mut out)?;
    Ok(out)
}

fn walk(template: &Template, out: &mut Vec<Include>) -> Result<(), (usize, usize)> {
    for (i, element) in template.elements.iter().enumerate() {
        let at = template.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
        let (name, inner) = match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                (Some(partial_name(&d.name).ok_or(at)?), vec![&d.template])
            }
            TemplateElement::DecoratorBlock(d) => (None, vec![&d.template]),
            TemplateElement::HelperBlock(h) => (None, vec![&h.template, &h.inverse]),
            _ => (None, Vec::new()),
        };
        if let Some(name) = name.filter(|n| n != "@partial-block") {
            out.push(Include { name, at });
        }
        for t in inner.into_iter().flatten() {
            walk(t, out)?;
        }
    }
    Ok(())
}

fn partial_name(name: &Parameter) -> Option<String> {
    match name {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(Path::Relative((segments, _))) => {
            let names: Option<Vec<&str>> = segments
                .iter()
                .map(|s| match s {
                    PathSeg::Named(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect();
            names.map(|n| n.join("/"))
        }
        Parameter::Literal(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Why the partial graph cannot be rendered, found from `root`: the chain of names
/// that leads back to itself, or the one that expands too many times.
enum Problem {
    Cycle(Vec<String>),
    TooMany(String),
}

/// Follows includes from `root` through `graph` (a name → its includes).
fn check(root: &str, graph: &BTreeMap<String, Vec<String>>) -> Option<Problem> {
    let mut expansions: HashMap<String, u64> = HashMap::new();
    let mut chain = vec![root.to_owned()];
    count(root, graph, &mut chain, &mut expansions).err()
}

/// How many partial expansions rendering `name` makes, memoized; an error on a cycle.
fn count(
    name: &str,
    graph: &BTreeMap<String, Vec<String>>,
    chain: &mut Vec<String>,
    memo: &mut HashMap<String, u64>,
) -> Result<u64, Problem> {
    if let Some(&n) = memo.get(name) {
        return Ok(n);
    }
    let mut total: u64 = 0;
    for child in graph.get(name).map(Vec::as_slice).unwrap_or_default() {
        if let Some(start) = chain.iter().position(|c| c == child) {
            let mut cycle = chain[start..].to_vec();
            cycle.push(child.clone());
            return Err(Problem::Cycle(cycle));
        }
        chain.push(child.clone());
        let n = count(child, graph, chain, memo)?;
        chain.pop();
        total = total.saturating_add(n.saturating_add(1));
        if total > MAX_EXPANSIONS {
            return Err(Problem::TooMany(name.to_owned()));
        }
    }
    memo.insert(name.to_owned(), total);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn finds_the_partials_a_template_includes() {
        let t = Template::compile(
            "a {{> footer}}\n{{#if x}}{{> layouts/base}}{{else}}{{#> sig}}b{{/sig}}{{/if}}",
        )
        .unwrap();
        let names: Vec<String> = includes(&t).unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["footer", "layouts/base", "sig"]);
        // A computed name cannot be followed.
        let dynamic = Template::compile("x\n{{> (pick kind)}}").unwrap();
        assert_eq!(includes(&dynamic).err(), Some((2, 1)));
    }

    #[test]
    fn refuses_cycles_and_fan_out_but_not_shared_partials() {
        let cyclic = graph(&[("t", &["a"]), ("a", &["b"]), ("b", &["a"])]);
        match check("t", &cyclic) {
            Some(Problem::Cycle(chain)) => assert_eq!(chain, ["a", "b", "a"]),
            _ => panic!("no cycle found"),
        }
        let shared = graph(&[("t", &["a", "b"]), ("a", &["c"]), ("b", &["c"])]);
        assert!(check("t", &shared).is_none());
        // 10 + 100 + 1,000 + 10,000 expansions.
        let fan = graph(&[
            ("t", &["n"; 10]),
            ("n", &["m"; 10]),
            ("m", &["o"; 10]),
            ("o", &["p"; 10]),
        ]);
        assert!(matches!(check("t", &fan), Some(Problem::TooMany(_))));
    }
}
