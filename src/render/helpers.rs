//! The registries and the helpers templates can call: `date`, `default`, `upper`,
//! `lower`, `plural`. Helpers honour strict mode: a missing argument is an error naming
//! the variable, except for `default`, whose job is to stand in for one.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use jiff::Timestamp;
use jiff::fmt::strtime;
use jiff::tz::TimeZone;
use serde_json::Value;

pub(super) fn registry(escape_html: bool) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.set_dev_mode(false);
    if !escape_html {
        registry.register_escape_fn(handlebars::no_escape);
    }
    registry.register_helper("date", Box::new(date_helper));
    registry.register_helper("default", Box::new(default_helper));
    registry.register_helper(
        "upper",
        Box::new(
            |h: &Helper<'_>,
             r: &Handlebars<'_>,
             _: &Context,
             rc: &mut RenderContext<'_, '_>,
             out: &mut dyn Output|
             -> HelperResult {
                write_value(r, rc, out, &required_str(h, "upper", 0)?.to_uppercase())?;
                Ok(())
            },
        ),
    );
    registry.register_helper(
        "lower",
        Box::new(
            |h: &Helper<'_>,
             r: &Handlebars<'_>,
             _: &Context,
             rc: &mut RenderContext<'_, '_>,
             out: &mut dyn Output|
             -> HelperResult {
                write_value(r, rc, out, &required_str(h, "lower", 0)?.to_lowercase())?;
                Ok(())
            },
        ),
    );
    registry.register_helper("plural", Box::new(plural_helper));
    // Handlebars' own `{{log}}` would write customers' data into tickler's logs.
    registry.register_helper("log", Box::new(no_log_helper));
    registry
}

fn no_log_helper(
    _: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    _: &mut dyn Output,
) -> HelperResult {
    Err(RenderErrorReason::Other(
        "the log helper is not available: tickler's logs never carry customers' data".into(),
    )
    .into())
}

/// Writes a helper's value as `{{name}}` would write a variable: escaped by the
/// registry (HTML bodies, SVG fronts), raw in `{{{triple}}}` braces.
fn write_value(
    r: &Handlebars<'_>,
    rc: &RenderContext<'_, '_>,
    out: &mut dyn Output,
    value: &str,
) -> std::io::Result<()> {
    if rc.is_disable_escape() {
        out.write(value)
    } else {
        out.write(&r.get_escape_fn()(value))
    }
}

/// A helper parameter that must be present; in strict mode a missing one is an error
/// naming the variable.
fn required<'a>(
    h: &'a Helper<'_>,
    helper: &'static str,
    index: usize,
) -> Result<&'a Value, RenderError> {
    let param = h
        .param(index)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, index))?;
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
    }
    Ok(param.value())
}

fn required_str(h: &Helper<'_>, helper: &'static str, index: usize) -> Result<String, RenderError> {
    Ok(match required(h, helper, index)? {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// `{{date VALUE "FORMAT"}}`: an RFC 3339 time or a plain date, in strftime format,
/// in the contact's zone.
fn date_helper(
    h: &Helper<'_>,
    r: &Handlebars<'_>,
    ctx: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = required_str(h, "date", 0)?;
    let format = h
        .param(1)
        .and_then(|p| p.value().as_str())
        .unwrap_or("%B %-d, %Y");
    let zone = ctx
        .data()
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    // `strftime(..).to_string()` would panic on a format jiff cannot use (`%Q`, a
    // time directive on a plain date); formatting directly returns the error instead.
    let shown = if let Ok(at) = value.parse::<Timestamp>() {
        strtime::format(format, &at.to_zoned(zone))
    } else if let Ok(day) = value.parse::<jiff::civil::Date>() {
        strtime::format(format, day)
    } else {
        return Err(
            RenderErrorReason::Other(format!("date: `{value}` is not a date or time")).into(),
        );
    };
    let shown = shown.map_err(|e| {
        RenderErrorReason::Other(format!("date: cannot use the format `{format}`: {e}"))
    })?;
    write_value(r, rc, out, &shown)?;
    Ok(())
}

/// `{{default VALUE "fallback"}}`: the fallback when the value is missing or empty.
fn default_helper<'reg, 'rc>(
    h: &Helper<'rc>,
    r: &'reg Handlebars<'reg>,
    _: &'rc Context,
    rc: &mut RenderContext<'reg, 'rc>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = h
        .param(0)
        .filter(|p| !p.is_value_missing())
        .map(|p| p.value());
    let empty = match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    };
    let chosen = if empty {
        h.param(1).map(|p| p.value())
    } else {
        value
    };
    let text = match chosen {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    write_value(r, rc, out, &text)?;
    Ok(())
}

/// `{{plural COUNT "visit" "visits"}}`.
fn plural_helper(
    h: &Helper<'_>,
    r: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let count = required(h, "plural", 0)?;
    let n = count
        .as_f64()
        .or_else(|| count.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or(0.0);
    let index = if n == 1.0 { 1 } else { 2 };
    write_value(r, rc, out, &required_str(h, "plural", index)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_date_format_jiff_cannot_use_is_an_error_not_a_panic() {
        let mut registry = super::registry(false);
        registry
            .register_template_string("t", "{{date at format}}")
            .unwrap();
        let render = |at: &str, format: &str| {
            registry.render(
                "t",
                &json!({ "at": at, "format": format, "timezone": "UTC" }),
            )
        };
        assert_eq!(render("2026-03-01", "%B %-d").unwrap(), "March 1");
        for (at, format) in [("2026-03-01T10:00:00Z", "%Y %"), ("2026-03-01", "%H:%M")] {
            let err = render(at, format).unwrap_err().to_string();
            assert!(
                err.contains("cannot use the format"),
                "{at} {format}: {err}"
            );
        }
    }
}
