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

    /// Its channels' presence subscribers learn it left.
    fn on_close(&mut self, ctx: &mut Context<'_>, _code: crate::CloseCode, _reason: &str) {
        let channels: Vec<String> = (ctx.subscriptions())
            .filter(|topic| !topic.starts_with('/'))
            .map(str::to_string)
            .collect();
        for channel in channels {
            announce(ctx, &channel, "leave");
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
        Command::Presence { channel } => (channel, ctx.may_subscribe(channel), "see who is on"),
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
        Command::Subscribe {
            channel,
            since,
            presence,
        } => {
            if !ctx.subscribe(&channel) {
                return error(
                    ctx,
                    id,
                    "already_subscribed",
                    "already subscribed to this channel",
                );
            }
            announce(ctx, &channel, "join");
            let mut reply = format!("{{\"type\":\"subscribed\",\"channel\":{}", quoted(&channel));
            if presence && ctx.keeps_presence(&channel) {
                ctx.subscribe(&presence_topic(&channel));
                reply += &format!(",\"presence\":{}", present_list(ctx, &channel));
            }
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
            ctx.unsubscribe(&presence_topic(&channel));
            announce(ctx, &channel, "leave");
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
        Command::Presence { channel } => {
            let reply = match ctx.keeps_presence(&channel) {
                true => format!(
                    "{{\"type\":\"presence\",\"channel\":{},\"presence\":{}{}}}",
                    quoted(&channel),
                    present_list(ctx, &channel),
                    id_field(id)
                ),
                false => return error(ctx, id, "bad_request", "this channel keeps no presence"),
            };
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

/// The topic a channel's `join` and `leave` events go to: its subscribers that asked for
/// presence subscribe to it (a name starting with `/`, which clients cannot use).
fn presence_topic(channel: &str) -> String {
    format!("/presence:{channel}")
}

/// `[{"connection":"ID","user":"NAME"},...]`: who is on `channel` now.
fn present_list(ctx: &Context<'_>, channel: &str) -> String {
    let list: Vec<String> = (ctx.presence(channel).iter())
        .map(|p| present_json(p.connection, p.user.as_deref(), p.instance.as_deref()))
        .collect();
    format!("[{}]", list.join(","))
}

/// `{"connection":"ID","user":"NAME","instance":"HEX"}` (no `user` for a connection without a
/// token, no `instance` without a cluster). The id is a string: JavaScript's numbers hold 53
/// bits, an id 64; with a cluster, ids are unique per instance.
pub fn present_json(
    connection: crate::ConnectionId,
    user: Option<&str>,
    instance: Option<&str>,
) -> String {
    let user = user.map_or(String::new(), |user| format!(",\"user\":{}", quoted(user)));
    let instance = instance.map_or(String::new(), |i| format!(",\"instance\":{}", quoted(i)));
    format!(
        "{{\"connection\":\"{}\"{user}{instance}}}",
        connection.to_u64()
    )
}

/// Tells the channel's presence subscribers that this connection joined or left it.
fn announce(ctx: &mut Context<'_>, channel: &str, event: &str) {
    if !ctx.keeps_presence(channel) {
        return;
    }
    let user = ctx.identity().map(|identity| identity.user().to_string());
    let who = present_json(ctx.id(), user.as_deref(), ctx.instance().as_deref());
    let text = format!(
        "{{\"type\":{},\"channel\":{},{}",
        quoted(event),
        quoted(channel),
        &who[1..]
    );
    ctx.publish_ephemeral(
        &presence_topic(channel),
        Message::Text(&text),
        Publish::ToOthers,
    );
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
