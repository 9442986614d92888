//! The `/pubsub` endpoint: applications' own channels, as JSON text messages (see README.md
//! and [`wire`]). A channel is a topic of the same name; with history
//! ([`ServerBuilder::history`](crate::ServerBuilder::history)) every publication carries its
//! offset, and a client that subscribes again with the last position it saw (`since`) gets
//! exactly what it missed, or is told it cannot (`recovered: false` and why).
//!
//! A reply (or error) repeats the command's `id`: an acknowledgement. What one reply carries
//! is bounded (256 KiB of publications): the rest of a long recovery is a `history` away
//! (`more`).
//!
//! With auth ([`ServerBuilder::auth`](crate::ServerBuilder::auth)) a `subscribe` or `history`
//! needs the channel in the token's `subs`, a `publish` in its `pubs` ([`Context::may_subscribe`],
//! [`Context::may_publish`]); a refusal is an error (`forbidden`) with the command's `id`, and
//! the connection stays. `refresh` hands the server a fresh token before the old one expires.
//! Over the rate limit a command is answered `rate_limit` instead of being served.

pub mod wire;

use serde_json::Value;

use super::kept;
use crate::server::history::unix_ms;
use crate::{Context, Handler, HistoryPage, Message, NotRecovered, Publish};
use wire::{id_field, position_fields, publication, quoted, Command, Refused};

/// The `/pubsub` endpoint (see the module docs). It keeps no state of its own: subscriptions
/// are the hub's, history the server's.
#[derive(Debug, Default, Clone, Copy)]
pub struct PubSub;

impl Handler for PubSub {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            error(
                ctx,
                &None,
                "bad_request",
                "binary messages are not commands; send JSON text",
            );
            return;
        };
        let (id, command) = wire::parse(text);
        match command {
            Ok(command) => serve(ctx, &id, command),
            Err(Refused { code, message }) => error(ctx, &id, code, &message),
        }
    }

    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let id = match message {
            Message::Text(text) => wire::parse(text).0,
            Message::Binary(_) => None,
        };
        let why = "too many messages: slow down, or the connection is closed";
        error(ctx, &id, "rate_limit", why);
    }
}

/// Whether this connection may do `command`; the error to answer when not.
fn permitted(ctx: &Context<'_>, command: &Command) -> Result<(), String> {
    let (channel, allowed, verb) = match command {
        Command::Subscribe { channel, .. } | Command::History { channel, .. } => {
            (channel, ctx.may_subscribe(channel), "subscribe to")
        }
        Command::Publish { channel, .. } => (channel, ctx.may_publish(channel), "publish on"),
        Command::Unsubscribe { .. } | Command::Refresh { .. } => return Ok(()),
    };
    match allowed {
        true => Ok(()),
        false => Err(format!("not allowed to {verb} {channel:?}")),
    }
}

fn serve(ctx: &mut Context<'_>, id: &Option<Value>, command: Command) {
    if let Err(why) = permitted(ctx, &command) {
        return error(ctx, id, "forbidden", &why);
    }
    match command {
        Command::Refresh { token } => match ctx.refresh_token(&token) {
            Ok(identity) => {
                let expires = identity.expires().and_then(|at| {
                    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
                    Some(since.as_secs())
                });
                let expires = expires.map_or(String::new(), |exp| format!(",\"exp\":{exp}"));
                let reply = format!("{{\"type\":\"refreshed\"{expires}{}}}", id_field(id));
                ctx.send_text(&reply);
            }
            Err(why) => error(ctx, id, "bad_token", why.reason()),
        },
        Command::Subscribe { channel, since } => {
            if !ctx.subscribe(&channel) {
                return error(
                    ctx,
                    id,
                    "already_subscribed",
                    "already subscribed to this channel",
                );
            }
            let mut reply = format!("{{\"type\":\"subscribed\",\"channel\":{}", quoted(&channel));
            match since.map(|since| ctx.history(&channel, Some(&since), usize::MAX)) {
                None => {
                    let position = ctx.position(&channel);
                    reply += &format!(",{},\"publications\":[]", position_fields(&position));
                }
                Some(Ok(page)) => {
                    reply += &format!(",\"recovered\":true,{}", page_fields(&page));
                }
                Some(Err(not)) => reply += &not_recovered_fields(&not),
            }
            reply += &id_field(id);
            reply.push('}');
            ctx.send_text(&reply);
        }
        Command::Unsubscribe { channel } => {
            if !ctx.unsubscribe(&channel) {
                return error(ctx, id, "not_subscribed", "not subscribed to this channel");
            }
            let reply = format!(
                "{{\"type\":\"unsubscribed\",\"channel\":{}{}}}",
                quoted(&channel),
                id_field(id)
            );
            ctx.send_text(&reply);
        }
        Command::Publish { channel, data } => {
            let ts = unix_ms();
            let position = ctx.publish_with(&channel, Publish::ToAll, |position| {
                publication(&channel, position, &data, ts)
            });
            let position = position.map_or(String::new(), |p| format!(",{}", position_fields(&p)));
            let reply = format!(
                "{{\"type\":\"published\",\"channel\":{}{position}{}}}",
                quoted(&channel),
                id_field(id)
            );
            ctx.send_text(&reply);
        }
        Command::History {
            channel,
            since,
            limit,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let reply = match ctx.history(&channel, since.as_ref(), limit) {
                Ok(page) => format!(
                    "{{\"type\":\"history\",\"channel\":{},{}{}}}",
                    quoted(&channel),
                    page_fields(&page),
                    id_field(id)
                ),
                Err(not) => format!(
                    "{{\"type\":\"error\",\"code\":\"not_recovered\",\"message\":{}{}{}}}",
                    quoted(&format!("history after that position: {}", not.reason())),
                    not_recovered_fields(&not),
                    id_field(id)
                ),
            };
            ctx.send_text(&reply);
        }
    }
}

/// `"offset":N,"epoch":"...","publications":[...],"more":bool`: as many of the page's
/// messages as one reply carries (`kept::MAX_PAGE_BYTES`), and whether more are kept.
fn page_fields(page: &HistoryPage) -> String {
    let (list, more) = kept::json_list(page);
    format!(
        "{},\"publications\":{list},\"more\":{more}",
        position_fields(&page.position)
    )
}

/// `,"recovered":false,"reason":"...","offset":N,"epoch":"...","publications":[]`
fn not_recovered_fields(not: &NotRecovered) -> String {
    format!(
        ",\"recovered\":false,\"reason\":{},{},\"publications\":[]",
        quoted(not.reason()),
        position_fields(not.position())
    )
}

fn error(ctx: &mut Context<'_>, id: &Option<Value>, code: &str, message: &str) {
    let reply = format!(
        "{{\"type\":\"error\",\"code\":{},\"message\":{}{}}}",
        quoted(code),
        quoted(message),
        id_field(id)
    );
    ctx.send_text(&reply);
}
