//! `/console/plan` (what goes out in the next days) and `/console/cadences` (each
//! follow-up, what it does and how it went over 30 days).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SignedIn;
use super::pages::{frame, link, unavailable, when};
use super::view;
use crate::agenda::forecast;
use crate::domain::SendStatus;
use crate::http::AppState;
use crate::store::SendFilter;
use crate::timeline::trigger_in_words;

/// Contacts read from the due index at a time.
const PAGE: u32 = 1000;
/// Planned sends listed one by one (the counts cover them all).
const LISTED: usize = 100;
/// The longest look ahead.
const MAX_DAYS: u32 = 90;

#[derive(Deserialize)]
pub struct PlanQuery {
    days: Option<u32>,
}

pub async fn plan(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Query(query): Query<PlanQuery>,
) -> Response {
    let engine = state.status.engine();
    let config = &engine.config;
    let store = engine.store.as_ref();
    let zone = &config.business.zone;
    let days = query.days.unwrap_or(7).clamp(1, MAX_DAYS);
    let now = Timestamp::now();
    let until = now + SignedDuration::from_hours(24 * i64::from(days));
    let mut planned = Vec::new();
    let mut after = (i64::MIN, String::new());
    loop {
        let page = match store.due_by(until, (after.0, &after.1), PAGE).await {
            Ok(page) => page,
            Err(e) => return unavailable(e),
        };
        let Some(last) = page.last() else { break };
        after = last.clone();
        let ids: Vec<String> = page.into_iter().map(|(_, id)| id).collect();
        let histories = match store.history(&ids).await {
            Ok(h) => h,
            Err(e) => return unavailable(e),
        };
        for history in &histories {
            planned.extend(
                forecast(config, history, now, until).map(|p| (p, history.contact.full_name())),
            );
        }
    }
    planned.sort_by(|(a, _), (b, _)| (a.send_at, &a.contact).cmp(&(b.send_at, &b.contact)));
    // Day -> cadence -> count, days in order.
    let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (p, _) in &planned {
        let day = p.send_at.to_zoned(zone.clone()).date().to_string();
        *by_day
            .entry(day)
            .or_default()
            .entry(p.cadence.clone())
            .or_default() += 1;
    }
    let cadence_ids = config.cadence_ids();
    let day_rows: Vec<Value> = by_day
        .iter()
        .map(|(day, counts)| {
            let cells: Vec<Value> = cadence_ids
                .iter()
                .map(|c| json!({"label": c, "n": counts.get(c).copied().unwrap_or(0)}))
                .collect();
            json!({"day": day, "cells": cells, "total": counts.values().sum::<u64>()})
        })
        .collect();
    let listed: Vec<Value> = planned
        .iter()
        .take(LISTED)
        .map(|(p, name)| {
            json!({
                "at": when(p.send_at, zone),
                "contact": p.contact,
                "contact_link": link(&p.contact),
                "name": name,
                "cadence": p.cadence,
                "channel": p.channel.to_string(),
                "occurrence": p.occurrence,
            })
        })
        .collect();
    let mut data = frame(&engine, "Plan", "plan", &me.csrf);
    data.insert("days".into(), days.into());
    data.insert("total".into(), planned.len().into());
    data.insert("cadences".into(), cadence_ids.into());
    data.insert("by_day".into(), day_rows.into());
    data.insert("listed".into(), listed.into());
    data.insert("more".into(), planned.len().saturating_sub(LISTED).into());
    view::page("plan", &Value::Object(data))
}

pub async fn cadences(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
) -> Response {
    let engine = state.status.engine();
    let store = engine.store.as_ref();
    let zone = &engine.config.business.zone;
    let since = Timestamp::now() - SignedDuration::from_hours(24 * 30);
    let ids = engine.config.cadence_ids();
    let counts = match store
        .cadence_counts(&ids, &SendStatus::ALL, Some(since))
        .await
    {
        Ok(counts) => counts,
        Err(e) => return unavailable(e),
    };
    let statuses = [
        SendStatus::Sent,
        SendStatus::Failed,
        SendStatus::Retrying,
        SendStatus::Skipped,
        SendStatus::Bounced,
    ];
    let mut rows = Vec::new();
    for c in &engine.config.cadences {
        let last_failed = match store
            .sends(&SendFilter {
                cadence: Some(c.id.clone()),
                status: Some(SendStatus::Failed),
                limit: Some(1),
                ..SendFilter::default()
            })
            .await
        {
            Ok(mut rows) => rows.pop(),
            Err(e) => return unavailable(e),
        };
        let cells: Vec<Value> = statuses
            .iter()
            .map(|s| {
                let n: i64 = counts
                    .iter()
                    .filter(|(id, status, _)| *id == c.id && status == s)
                    .map(|(_, _, n)| n)
                    .sum();
                json!({"label": s.as_str(), "n": n})
            })
            .collect();
        rows.push(json!({
            "id": c.id,
            "channel": c.channel.to_string(),
            "trigger": trigger_in_words(c),
            "enabled": c.enabled,
            "cells": cells,
            "last_error": last_failed.as_ref().map(|r| format!(
                "{}: {}",
                when(r.updated_at, zone),
                r.reply.as_deref().or(r.reason.as_deref()).unwrap_or("failed")
            )).unwrap_or_default(),
        }));
    }
    let mut data = frame(&engine, "Follow-ups", "cadences", &me.csrf);
    data.insert(
        "statuses".into(),
        statuses.map(|s| s.as_str()).to_vec().into(),
    );
    data.insert("rows".into(), rows.into());
    view::page("cadences", &Value::Object(data))
}
