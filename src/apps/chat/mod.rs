//! The chat endpoint: named users in rooms, room messages, private messages, typing
//! indicators and member lists, as JSON text messages (see README.md and [`wire`]).
//!
//! A room is a topic (`<path>:<room>`): members subscribe to it, and room events are published
//! to it, encoded once for every member. A user's name is a key in the server's directory
//! ([`Context::claim`]: `<path>:<name in lower case>`, valued `<room>\n<name>`), which makes
//! names unique and lists complete across every loop and, with a cluster, every instance; a
//! private message goes to the recipient's own topic (`<path>@<name in lower case>`), wherever
//! it is connected. Each loop's chat keeps only its own connections' users.
//!
//! With auth ([`ServerBuilder::auth`](crate::ServerBuilder::auth)) a user's name is their
//! token's (`name`, else `sub`): a `join` cannot choose another, and joining needs a token. A
//! room is the channel `<path without />:<room>` (`chat:lobby`) for the token's permissions:
//! entering it needs `subs`, speaking in it (messages, typing) needs `pubs`.

pub mod wire;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::kept;
use crate::{Claim, CloseCode, ConnectionId, Context, Handler, Message, Publish, StreamPosition};
use wire::{valid_name, At, ErrorCode, Event, Request, MAX_TEXT_BYTES};

/// The room a `join` without one enters.
pub const DEFAULT_ROOM: &str = "lobby";

#[derive(Debug, Clone)]
struct User {
    name: String,
    room: String,
    /// The name is claimed (and not still being decided by Redis).
    joined: bool,
    /// The position the join came back with, until the user enters their room.
    since: Option<StreamPosition>,
}

/// How many of a room's last events a joiner gets, by default.
pub const DEFAULT_HISTORY: usize = 50;

/// The chat endpoint (see the module docs). A clone starts with no users of its own.
#[derive(Debug)]
pub struct Chat {
    users: HashMap<ConnectionId, User>,
    /// How many of a room's last events a joiner gets (with the server's history).
    history: usize,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat::with_history(DEFAULT_HISTORY)
    }
}

impl Chat {
    /// A chat whose joiners get the last `events` of their room, when the server keeps
    /// history for its rooms ([`ServerBuilder::history`](crate::ServerBuilder::history)).
    pub fn with_history(events: usize) -> Chat {
        Chat {
            users: HashMap::new(),
            history: events,
        }
    }
}

impl Clone for Chat {
    fn clone(&self) -> Chat {
        Chat::with_history(self.history)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The directory key of `name` on this route.
fn name_key(ctx: &Context<'_>, name: &str) -> String {
    format!("{}:{}", ctx.path(), name.to_lowercase())
}

/// What the directory holds for a user: the room, then the name as they spelled it.
fn name_value(room: &str, name: &str) -> String {
    format!("{room}\n{name}")
}

/// The topic of `room` on this route.
fn topic(ctx: &Context<'_>, room: &str) -> String {
    format!("{}:{room}", ctx.path())
}

/// The channel name a room's permissions are checked against: `chat:lobby` on `/chat`.
fn room_channel(ctx: &Context<'_>, room: &str) -> String {
    format!("{}:{room}", ctx.path().trim_start_matches('/'))
}

/// Refuses with `forbidden` unless the token lets this connection enter `room`.
fn may_enter(ctx: &mut Context<'_>, room: &str) -> bool {
    let allowed = ctx.may_subscribe(&room_channel(ctx, room));
    if !allowed {
        refuse(
            ctx,
            ErrorCode::Forbidden,
            format!("not allowed in room {room}"),
        );
    }
    allowed
}

/// Refuses with `forbidden` unless the token lets this connection speak in `room`.
fn may_speak(ctx: &mut Context<'_>, room: &str) -> bool {
    let allowed = ctx.may_publish(&room_channel(ctx, room));
    if !allowed {
        refuse(
            ctx,
            ErrorCode::Forbidden,
            format!("not allowed to speak in room {room}"),
        );
    }
    allowed
}

/// The name a `join` takes: the token's when there is one (a different one asked for is
/// refused), else the one asked for. `None` when refused (the error is sent).
fn joining_name(ctx: &mut Context<'_>, asked: Option<String>) -> Option<String> {
    if let Some(identity) = ctx.identity() {
        let own = identity.name().to_string();
        if asked.is_some_and(|asked| asked.to_lowercase() != own.to_lowercase()) {
            let why = format!("your name is {own}: it comes from your token");
            refuse(ctx, ErrorCode::Forbidden, why);
            return None;
        }
        return Some(own);
    }
    if ctx.tokens_checked() {
        let why = "names come from tokens here: connect with ?token=... to chat";
        refuse(ctx, ErrorCode::Forbidden, why);
        return None;
    }
    if asked.is_none() {
        refuse(ctx, ErrorCode::BadRequest, "missing field \"name\"");
    }
    asked
}

/// The topic only the user named `name` listens to, for private messages.
fn inbox(ctx: &Context<'_>, name: &str) -> String {
    format!("{}@{}", ctx.path(), name.to_lowercase())
}

/// Sends the event `make` builds to everyone in `room` (`to` says whether the sender too),
/// keeping it in the room's history: the event carries its position there.
fn publish(
    ctx: &mut Context<'_>,
    room: &str,
    to: Publish,
    make: impl FnOnce(Option<At<'_>>) -> String,
) {
    let topic = topic(ctx, room);
    ctx.publish_with(&topic, to, |position| make(At::of(position)));
}

/// Sends this connection, as a `history` event, the room's kept events after `since` (at most
/// `limit`), or without it the latest `latest`. A position that cannot be served gets the
/// latest `latest` instead, with `recovered: false` and why.
fn send_history(
    ctx: &mut Context<'_>,
    room: &str,
    since: Option<&StreamPosition>,
    limit: usize,
    latest: usize,
) {
    let topic = topic(ctx, room);
    let latest = |ctx: &Context<'_>| ctx.history(&topic, None, latest);
    let (page, recovered) = match since.map(|since| ctx.history(&topic, Some(since), limit)) {
        None => (latest(ctx), None),
        Some(Ok(page)) => (Ok(page), Some(Ok(()))),
        Some(Err(not)) => (latest(ctx), Some(Err(not.reason()))),
    };
    let Ok(page) = page else {
        return; // reading without a position always succeeds
    };
    let (events, more) = kept::json_list(&page);
    let recovered = match recovered {
        None => String::new(),
        Some(Ok(())) => ",\"recovered\":true".into(),
        Some(Err(reason)) => format!(",\"recovered\":false,\"reason\":{}", json_string(reason)),
    };
    let history = format!(
        "{{\"type\":\"history\",\"room\":{},\"offset\":{},\"epoch\":{},\"events\":{events},\"more\":{more}{recovered},\"ts\":{}}}",
        json_string(room),
        page.position.offset,
        json_string(&page.position.epoch),
        now_ms()
    );
    ctx.send_text(&history);
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn refuse(ctx: &mut Context<'_>, code: ErrorCode, message: impl Into<String>) {
    let event = Event::Error {
        code,
        message: message.into(),
        ts: now_ms(),
    };
    ctx.send_text(&event.to_json());
}

/// Tells this connection who is in `room`, wherever they are connected.
fn send_users(ctx: &mut Context<'_>, room: &str) {
    let prefix = format!("{}:", ctx.path());
    let claimed = ctx.claimed_with_prefix(&prefix);
    let mut names: Vec<&str> = (claimed.iter())
        .filter_map(|(_, value)| value.split_once('\n'))
        .filter(|(in_room, _)| *in_room == room)
        .map(|(_, name)| name)
        .collect();
    names.sort_by_key(|name| name.to_lowercase());
    let event = Event::Users {
        room,
        names,
        ts: now_ms(),
    };
    ctx.send_text(&event.to_json());
}

impl Chat {
    /// The user's name is theirs: they enter their room.
    fn joined(&mut self, ctx: &mut Context<'_>) {
        let id = ctx.id();
        let user = self.users.get_mut(&id).expect("a joining user");
        user.joined = true;
        let (name, room, since) = (user.name.clone(), user.room.clone(), user.since.take());
        let inbox = inbox(ctx, &name);
        ctx.subscribe(&inbox);
        self.enter(ctx, room, since);
    }

    /// Enters `room`: its history first (what followed `since`, or its latest events), then
    /// the joiner's own `joined`, then who is there.
    fn enter(&mut self, ctx: &mut Context<'_>, room: String, since: Option<StreamPosition>) {
        let id = ctx.id();
        let topic = topic(ctx, &room);
        ctx.subscribe(&topic);
        send_history(ctx, &room, since.as_ref(), usize::MAX, self.history);
        let user = self.users.get_mut(&id).expect("a joined user");
        user.room = room.clone();
        let name = user.name.clone();
        let key = name_key(ctx, &name);
        ctx.set_claim_value(&key, &name_value(&room, &name));
        publish(ctx, &room, Publish::ToAll, |at| {
            let ts = now_ms();
            Event::Joined {
                name: &name,
                room: &room,
                at,
                ts,
            }
            .to_json()
        });
        send_users(ctx, &room);
    }

    /// Takes the user out of their room and tells those who are left (and the user, when
    /// `tell_self`).
    fn leave_room(&mut self, ctx: &mut Context<'_>, tell_self: bool) {
        let user = &self.users[&ctx.id()];
        let (name, room) = (user.name.clone(), user.room.clone());
        let to = if tell_self {
            Publish::ToAll
        } else {
            Publish::ToOthers
        };
        publish(ctx, &room, to, |at| {
            let ts = now_ms();
            Event::Left {
                name: &name,
                room: &room,
                at,
                ts,
            }
            .to_json()
        });
        let topic = topic(ctx, &room);
        ctx.unsubscribe(&topic);
    }

    fn join(
        &mut self,
        ctx: &mut Context<'_>,
        name: Option<String>,
        room: Option<String>,
        since: Option<StreamPosition>,
    ) {
        let id = ctx.id();
        if let Some(user) = self.users.get(&id) {
            let how = if user.joined { "joined" } else { "joining" };
            return refuse(
                ctx,
                ErrorCode::AlreadyJoined,
                format!("already {how} as {}", user.name),
            );
        }
        let Some(name) = joining_name(ctx, name) else {
            return;
        };
        if !valid_name(&name) {
            let whose = if ctx.identity().is_some() {
                "the token's name does not fit: "
            } else {
                ""
            };
            let rule = "a name is 1-32 characters, no control characters or surrounding spaces";
            return refuse(ctx, ErrorCode::BadName, format!("{whose}{rule}"));
        }
        let room = room.unwrap_or_else(|| DEFAULT_ROOM.to_string());
        if !valid_name(&room) {
            return refuse(
                ctx,
                ErrorCode::BadRoom,
                "a room name is 1-32 characters, no control characters or surrounding spaces",
            );
        }
        if !may_enter(ctx, &room) {
            return;
        }
        let key = name_key(ctx, &name);
        let claim = ctx.claim(&key, &name_value(&room, &name));
        if claim == Claim::Taken {
            return name_taken(ctx, &name);
        }
        let user = User {
            name,
            room,
            joined: false,
            since,
        };
        self.users.insert(id, user);
        if claim == Claim::Granted {
            self.joined(ctx);
        }
    }

    fn handle(&mut self, ctx: &mut Context<'_>, request: Request) {
        let id = ctx.id();
        let user = self.users.get(&id).filter(|user| user.joined);
        let Some(user) = user else {
            return match request {
                Request::Join { name, room, since } => {
                    self.join(ctx, name, room, since.map(|s| s.position()))
                }
                Request::Refresh { token } => refresh(ctx, &token),
                _ => refuse(ctx, ErrorCode::NotJoined, "send join first"),
            };
        };
        let (name, room) = (user.name.clone(), user.room.clone());
        match request {
            Request::Join { name, room, since } => {
                self.join(ctx, name, room, since.map(|s| s.position()))
            }
            Request::Message { text } | Request::Pm { text, .. } if text.len() > MAX_TEXT_BYTES => {
                refuse(
                    ctx,
                    ErrorCode::BadRequest,
                    format!("text is longer than {MAX_TEXT_BYTES} bytes"),
                );
            }
            Request::Message { text } | Request::Pm { text, .. } if text.trim().is_empty() => {
                refuse(
                    ctx,
                    ErrorCode::BadRequest,
                    "text is blank: a message needs a non-space character",
                );
            }
            Request::Message { .. } | Request::Typing { .. } if !may_speak(ctx, &room) => {}
            Request::Message { text } => {
                publish(ctx, &room, Publish::ToAll, |at| {
                    let ts = now_ms();
                    Event::Message {
                        from: &name,
                        room: &room,
                        text: &text,
                        at,
                        ts,
                    }
                    .to_json()
                });
            }
            Request::Pm { to, text } => {
                let recipient = ctx.lookup(&name_key(ctx, &to));
                let Some((_, to_name)) = recipient.as_deref().and_then(|v| v.split_once('\n'))
                else {
                    return refuse(ctx, ErrorCode::UnknownUser, format!("no user named {to}"));
                };
                let event = Event::Pm {
                    from: &name,
                    to: to_name,
                    text: &text,
                    ts: now_ms(),
                };
                let json = event.to_json();
                let inbox = inbox(ctx, to_name);
                // The recipient's copy; the sender's own when writing to themselves.
                ctx.publish(&inbox, Message::Text(&json), Publish::ToAll);
                if to_name.to_lowercase() != name.to_lowercase() {
                    ctx.send_text(&json);
                }
            }
            Request::Typing { active } => {
                let event = Event::Typing {
                    name: &name,
                    active,
                    ts: now_ms(),
                };
                // Typing only matters now: it is never kept, nor replayed.
                let topic = topic(ctx, &room);
                ctx.publish_ephemeral(&topic, Message::Text(&event.to_json()), Publish::ToOthers);
            }
            Request::Room { room: next } if !valid_name(&next) => {
                refuse(
                    ctx,
                    ErrorCode::BadRoom,
                    "a room name is 1-32 characters, no control characters or surrounding spaces",
                );
            }
            Request::Room { room: next } if next == room => send_users(ctx, &room),
            Request::Room { room: next } if !may_enter(ctx, &next) => {}
            Request::Room { room: next } => {
                self.leave_room(ctx, true);
                self.enter(ctx, next, None);
            }
            Request::List => send_users(ctx, &room),
            // A refresh may have taken the room away: its past too (it stays live).
            Request::History { .. } if !may_enter(ctx, &room) => {}
            Request::History { since, limit } => {
                let limit = limit.map_or(wire::MAX_HISTORY as usize, |n| n as usize);
                let since = since.map(|s| s.position());
                send_history(ctx, &room, since.as_ref(), limit, limit);
            }
            Request::Refresh { token } => refresh(ctx, &token),
        }
    }
}

/// Takes a fresh token: `refreshed` with its `exp`, or `bad_token` and why.
fn refresh(ctx: &mut Context<'_>, token: &str) {
    match ctx.refresh_token(token) {
        Ok(identity) => {
            let exp = identity.expires().and_then(|at| {
                let since = at.duration_since(UNIX_EPOCH).ok()?;
                Some(since.as_secs())
            });
            let event = Event::Refreshed { exp, ts: now_ms() };
            ctx.send_text(&event.to_json());
        }
        Err(why) => refuse(ctx, ErrorCode::BadToken, why.reason()),
    }
}

fn name_taken(ctx: &mut Context<'_>, name: &str) {
    refuse(
        ctx,
        ErrorCode::NameTaken,
        format!("{name} is taken (names ignore case)"),
    );
}

impl Handler for Chat {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return refuse(
                ctx,
                ErrorCode::BadRequest,
                "chat messages are JSON text, not binary",
            );
        };
        match Request::parse(text) {
            Ok(request) => self.handle(ctx, request),
            Err(why) => refuse(ctx, ErrorCode::BadRequest, why),
        }
    }

    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        let why = "too many messages: slow down, or the connection is closed";
        refuse(ctx, ErrorCode::RateLimit, why);
    }

    fn on_claim(&mut self, ctx: &mut Context<'_>, _key: &str, granted: bool) {
        let id = ctx.id();
        let Some(user) = self.users.get(&id).filter(|user| !user.joined) else {
            return;
        };
        if granted {
            self.joined(ctx);
        } else {
            let name = user.name.clone();
            self.users.remove(&id);
            name_taken(ctx, &name);
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, _code: CloseCode, _reason: &str) {
        let id = ctx.id();
        if self.users.get(&id).is_some_and(|user| user.joined) {
            self.leave_room(ctx, false);
        }
        // The name is released with the connection.
        self.users.remove(&id);
    }
}
