//! Which partials each template includes, to refuse at load time what would never
//! finish rendering. handlebars catches a partial that names itself, but not two that
//! include each other (`footer` → `signoff` → `footer`), nor an inline partial
//! (`{{#*inline "r"}}`) that includes itself: that recursion runs until the stack
//! overflows and the process dies. Partials that fan out (each including the next ten
//! times), and blocks nested too deep along a path through partials, are refused too.
//!
//! Every registered template or partial is a node, and so is every inline partial
//! definition (named `SOURCE#NAME`). `{{> name}}` resolves to the inline partial
//! `name` when its own source defines one (that shadows a registered partial, as in
//! handlebars); otherwise to the registered partial and to every inline partial of that
//! name defined anywhere, since handlebars lets an inline partial of a caller or of a
//! partial block's body reach into the partials it renders.

use std::collections::BTreeMap;
use std::path::PathBuf;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use super::graph::{self, Level, Node, Problem, Site};
use super::limits::{MAX_DEPTH, MAX_EACH};
use crate::config::{Diagnostic, Location};

/// A template or partial as loaded: its registered name, its file and its text.
pub(super) struct Source {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    pub partial: bool,
}

/// Every way the templates could fail to finish rendering, each at the include that
/// closes a cycle, at the block nested too deep, or at the template that fans out.
pub(super) fn diagnose(sources: &[Source]) -> Vec<Diagnostic> {
    let at = |file: &PathBuf, (line, col): (usize, usize)| Location {
        file: file.clone(),
        line,
        col,
    };
    let mut out: Vec<Diagnostic> = Vec::new();
    // Per source: its body and its inline partials, each as (name, includes, deepest).
    let mut walked: Vec<(&Source, Vec<Body>)> = Vec::new();
    for source in sources {
        // Syntax errors were reported when the template was registered.
        let Ok(template) = Template::compile(&source.text) else {
            continue;
        };
        let mut bodies = vec![Body::new(source.name.clone())];
        match walk(&template, 0, Level::default(), &mut bodies) {
            Ok(()) => walked.push((source, bodies)),
            Err(pos) => push_new(&mut out, Diagnostic {
                location: at(&source.file, pos),
                message: "a partial's name must be written out, such as {{> footer}}, so that it can be checked".into(),
            }),
        }
    }
    let registered: Vec<&str> = walked.iter().map(|(s, _)| s.name.as_str()).collect();
    let mut inline_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // An inline partial's node is `SOURCE#NAME#N`: one source may define a name twice,
    // and either definition may be the one a `{{> NAME}}` renders.
    let inline_key = |source: &Source, name: &str, i: usize| format!("{}#{name}#{i}", source.name);
    for (source, bodies) in &walked {
        for (i, body) in bodies.iter().enumerate().skip(1) {
            inline_of
                .entry(body.name.as_str())
                .or_default()
                .push(inline_key(source, &body.name, i));
        }
    }
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for (source, bodies) in &walked {
        let own = |name: &str| -> Vec<String> {
            bodies
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, b)| b.name == name)
                .map(|(i, b)| inline_key(source, &b.name, i))
                .collect()
        };
        for (i, body) in bodies.iter().enumerate() {
            let key = if i == 0 {
                source.name.clone()
            } else {
                inline_key(source, &body.name, i)
            };
            let sites = body
                .includes
                .iter()
                .map(|inc| {
                    let defined_here = own(&inc.name);
                    let targets = if !defined_here.is_empty() {
                        defined_here
                    } else {
                        let mut t: Vec<String> = registered
                            .iter()
                            .filter(|r| **r == inc.name)
                            .map(|r| r.to_string())
                            .collect();
                        t.extend(
                            inline_of
                                .get(inc.name.as_str())
                                .cloned()
                                .unwrap_or_default(),
                        );
                        t
                    };
                    Site {
                        targets,
                        at: inc.at,
                        level: inc.level,
                    }
                })
                .collect();
            nodes.insert(
                key,
                Node {
                    label: body.name.clone(),
                    inline: i > 0,
                    file: source.file.clone(),
                    sites,
                    deepest: body.deepest,
                    deepest_each: body.deepest_each,
                },
            );
        }
    }
    let mut memo = BTreeMap::new();
    for (root, _) in walked.iter().filter(|(s, _)| !s.partial) {
        let Some(problem) = graph::check(&root.name, &nodes, &mut memo) else {
            continue;
        };
        let d = match problem {
            Problem::Cycle { chain, at: pos } => {
                let node = &nodes[&chain[0]];
                let labels: Vec<&str> = chain.iter().map(|c| nodes[c].label.as_str()).collect();
                let kind = if node.inline {
                    "inline partial"
                } else {
                    "partial"
                };
                let message = if chain.len() == 2 {
                    format!(
                        "{kind} `{}` includes itself, so rendering would never end",
                        node.label
                    )
                } else {
                    format!(
                        "partials include each other ({}), so rendering would never end",
                        labels.join(" → ")
                    )
                };
                Diagnostic {
                    location: at(&node.file, pos),
                    message,
                }
            }
            Problem::TooMany(name) => Diagnostic {
                location: at(&root.file, (1, 1)),
                message: format!(
                    "partial `{}` expands into more than {} partials; a message that large is a mistake",
                    nodes[&name].label,
                    graph::MAX_EXPANSIONS
                ),
            },
            Problem::TooDeep { node, at: pos } => Diagnostic {
                location: at(&nodes[&node].file, pos),
                message: format!(
                    "blocks and partials nest more than {MAX_DEPTH} deep from here (counting the partials included), which rendering cannot afford"
                ),
            },
            Problem::TooManyEach { node, at: pos } => Diagnostic {
                location: at(&nodes[&node].file, pos),
                message: format!(
                    "`#each` blocks nest more than {MAX_EACH} deep from here (counting the partials included); each level multiplies the work by a list's length"
                ),
            },
        };
        push_new(&mut out, d);
    }
    out
}

/// Adds `d` unless it is there already (several templates reach the same problem).
fn push_new(out: &mut Vec<Diagnostic>, d: Diagnostic) {
    if !out.contains(&d) {
        out.push(d);
    }
}

/// A partial included by a template: its name, where the `{{>` is (line, column) and
/// how deep.
struct Include {
    name: String,
    at: (usize, usize),
    level: Level,
}

/// What one template body (a source's, or an inline partial's) contains: its includes,
/// and its deepest block and deepest `#each` with their places.
struct Body {
    name: String,
    includes: Vec<Include>,
    deepest: (usize, (usize, usize)),
    deepest_each: (usize, (usize, usize)),
}

impl Body {
    fn new(name: String) -> Body {
        Body {
            name,
            includes: Vec::new(),
            deepest: (0, (1, 1)),
            deepest_each: (0, (1, 1)),
        }
    }
}

/// Walks `template` as part of body `bodies[current]`, at `level`; an inline partial
/// definition starts a body of its own. `Err` is the place of a partial whose name is
/// computed, which cannot be checked.
fn walk(
    template: &Template,
    current: usize,
    level: Level,
    bodies: &mut Vec<Body>,
) -> Result<(), (usize, usize)> {
    for (i, element) in template.elements.iter().enumerate() {
        let at = template.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
        let inner = Level {
            depth: level.depth + 1,
            each: level.each,
        };
        let (body, inner, children) = match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                let name = partial_name(&d.name).ok_or(at)?;
                if name != "@partial-block" {
                    bodies[current].includes.push(Include { name, at, level });
                }
                (current, inner, vec![&d.template])
            }
            TemplateElement::DecoratorBlock(d) if is_inline(&d.name) => {
                let name = d.params.first().and_then(partial_name).ok_or(at)?;
                bodies.push(Body::new(name));
                (bodies.len() - 1, Level::default(), vec![&d.template])
            }
            TemplateElement::DecoratorBlock(d) => (current, inner, vec![&d.template]),
            TemplateElement::HelperBlock(h) => {
                let each = matches!(&h.name, Parameter::Name(n) if n == "each");
                let inner = Level {
                    each: level.each + usize::from(each),
                    ..inner
                };
                (current, inner, vec![&h.template, &h.inverse])
            }
            _ => continue,
        };
        let b = &mut bodies[body];
        if inner.depth > b.deepest.0 {
            b.deepest = (inner.depth, at);
        }
        if inner.each > b.deepest_each.0 {
            b.deepest_each = (inner.each, at);
        }
        for t in children.into_iter().flatten() {
            walk(t, body, inner, bodies)?;
        }
    }
    Ok(())
}

fn is_inline(name: &Parameter) -> bool {
    partial_name(name).is_some_and(|n| n == "inline")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, text: &str, partial: bool) -> Source {
        Source {
            name: name.into(),
            file: PathBuf::from(format!("{name}.hbs")),
            text: text.into(),
            partial,
        }
    }

    fn messages(sources: &[Source]) -> Vec<String> {
        diagnose(sources).iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn finds_the_partials_a_template_includes() {
        let t = Template::compile(
            "a {{> footer}}\n{{#if x}}{{> layouts/base}}{{else}}{{#> sig}}b{{/sig}}{{/if}}",
        )
        .unwrap();
        let mut bodies = vec![Body::new("t".into())];
        walk(&t, 0, Level::default(), &mut bodies).unwrap();
        let names: Vec<&str> = bodies[0].includes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["footer", "layouts/base", "sig"]);
        // A computed name cannot be followed.
        let dynamic = Template::compile("x\n{{> (pick kind)}}").unwrap();
        let mut bodies = vec![Body::new("t".into())];
        assert_eq!(
            walk(&dynamic, 0, Level::default(), &mut bodies),
            Err((2, 1))
        );
    }

    #[test]
    fn a_name_defined_twice_inline_is_followed_to_both_definitions() {
        // Found by fuzzing: the second definition hid the first, which recurses.
        let own = messages(&[source(
            "t",
            "Hi{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}{{#*inline \"r\"}}y{{/inline}}{{> r}}",
            false,
        )]);
        assert!(own.iter().any(|m| m.contains("includes itself")), "{own:?}");
    }

    #[test]
    fn inline_partials_are_part_of_the_graph() {
        let own = messages(&[source(
            "t",
            "{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}",
            false,
        )]);
        assert_eq!(own.len(), 1, "{own:?}");
        assert!(
            own[0].contains("inline partial `r` includes itself"),
            "{own:?}"
        );
        let pair = messages(&[source(
            "t",
            "{{#*inline \"a\"}}{{> b}}{{/inline}}{{#*inline \"b\"}}{{> a}}{{/inline}}{{> a}}",
            false,
        )]);
        assert!(pair[0].contains("(a → b → a)"), "{pair:?}");
        // An inline partial that a layout includes back from its caller.
        let layout = messages(&[
            source(
                "t",
                "{{#*inline \"body\"}}{{> base}}{{/inline}}{{> base}}",
                false,
            ),
            source("base", "<p>{{> body}}</p>", true),
        ]);
        assert!(
            layout[0].contains("partials include each other"),
            "{layout:?}"
        );
        // An inline partial shadows the registered one of its name, which it may use.
        let shadow = messages(&[
            source(
                "t",
                "{{#*inline \"footer\"}}x{{/inline}}{{> footer}}",
                false,
            ),
            source("footer", "{{> sig}}", true),
            source("sig", "bye", true),
        ]);
        assert!(shadow.is_empty(), "{shadow:?}");
    }

    #[test]
    fn refuses_deep_nesting_through_partials() {
        let each = messages(&[
            source(
                "t",
                "{{#each a}}{{#each b}}\n {{> p}}{{/each}}{{/each}}",
                false,
            ),
            source("p", "{{#each c}}{{#each d}}x{{/each}}{{/each}}", true),
        ]);
        assert_eq!(each.len(), 1, "{each:?}");
        assert!(
            each[0].starts_with("t.hbs:2:2: `#each` blocks nest more than 3"),
            "{each:?}"
        );
        let three = messages(&[source(
            "t",
            "{{#each a}}{{#each b}}{{#each c}}x{{/each}}{{/each}}{{/each}}",
            false,
        )]);
        assert!(three.is_empty(), "{three:?}");
        let chain: Vec<Source> = (0..40)
            .map(|i| {
                source(
                    &format!("p{i}"),
                    &format!("{{{{#if x}}}}{{{{> p{}}}}}{{{{/if}}}}", i + 1),
                    i > 0,
                )
            })
            .collect();
        let deep = messages(&chain);
        assert!(deep[0].contains("nest more than 32 deep"), "{deep:?}");
    }

    #[test]
    fn refuses_cycles_and_fan_out_but_not_shared_partials() {
        let cyclic = messages(&[
            source("t", "{{> a}}", false),
            source("a", "{{> b}}", true),
            source("b", "{{> a}}", true),
        ]);
        assert!(cyclic[0].contains("(a → b → a)"), "{cyclic:?}");
        let shared = messages(&[
            source("t", "{{> a}}{{> b}}", false),
            source("a", "{{> c}}", true),
            source("b", "{{> c}}", true),
            source("c", "x", true),
        ]);
        assert!(shared.is_empty(), "{shared:?}");
        // 10 + 100 + 1,000 + 10,000 expansions.
        let fan = messages(&[
            source("t", &"{{> n}}".repeat(10), false),
            source("n", &"{{> m}}".repeat(10), true),
            source("m", &"{{> o}}".repeat(10), true),
            source("o", &"{{> p}}".repeat(10), true),
            source("p", "x", true),
        ]);
        assert!(fan[0].contains("expands into more than"), "{fan:?}");
    }
}
