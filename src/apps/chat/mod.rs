//! The chat endpoint: named users in rooms, room messages, private messages, typing
//! indicators and member lists, as JSON text messages (see README.md and [`wire`]).
//!
//! A room is a topic (`<path>:<room>`): members subscribe to it, and room events are published
//! to it, encoded once for every member. The chat keeps names and who is in which room, for
//! uniqueness, private messages and member lists. Clones of a [`Chat`] share that state, so
//! one chat spans every event loop of a server that runs several (`route_each`): names are
//! unique across loops, and private messages, lists, joins and leaves reach users on any loop.

pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{CloseCode, ConnectionId, Context, Handler, Message, Publish};
use wire::{valid_name, ErrorCode, Event, Request, MAX_TEXT_BYTES};

/// The room a `join` without one enters.
pub const DEFAULT_ROOM: &str = "lobby";

#[derive(Debug)]
struct User {
    name: String,
    room: String,
}

/// The chat endpoint. Its clones are one chat (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct Chat {
    state: Arc<Mutex<State>>,
}

/// Who is connected under which name, in which room.
#[derive(Debug, Default)]
struct State {
    users: HashMap<ConnectionId, User>,
    /// Lower-cased names, for case-insensitive uniqueness and PM lookup.
    by_name: HashMap<String, ConnectionId>,
    rooms: HashMap<String, BTreeSet<ConnectionId>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn send(ctx: &mut Context<'_>, to: impl IntoIterator<Item = ConnectionId>, event: &Event<'_>) {
    ctx.send_to_many(to, Message::Text(&event.to_json()));
}

/// The topic of `room` on this route.
fn topic(ctx: &Context<'_>, room: &str) -> String {
    format!("{}:{room}", ctx.path())
}

/// Sends `event` to everyone in `room` (`to` says whether the sender too).
fn publish(ctx: &mut Context<'_>, room: &str, event: &Event<'_>, to: Publish) {
    let topic = topic(ctx, room);
    ctx.publish(&topic, Message::Text(&event.to_json()), to);
}

fn refuse(ctx: &mut Context<'_>, code: ErrorCode, message: impl Into<String>) {
    let event = Event::Error {
        code,
        message: message.into(),
        ts: now_ms(),
    };
    ctx.send_text(&event.to_json());
}

impl State {
    fn members(&self, room: &str) -> Vec<ConnectionId> {
        self.rooms
            .get(room)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    fn send_users(&self, ctx: &mut Context<'_>, room: &str) {
        let mut names: Vec<&str> = self
            .members(room)
            .iter()
            .filter_map(|id| self.users.get(id))
            .map(|u| u.name.as_str())
            .collect();
        names.sort_by_key(|name| name.to_lowercase());
        let id = ctx.id();
        send(
            ctx,
            [id],
            &Event::Users {
                room,
                names,
                ts: now_ms(),
            },
        );
    }

    fn enter(&mut self, ctx: &mut Context<'_>, room: String) {
        let id = ctx.id();
        self.rooms.entry(room.clone()).or_default().insert(id);
        let topic = topic(ctx, &room);
        ctx.subscribe(&topic);
        let name = self.users[&id].name.clone();
        let joined = Event::Joined {
            name: &name,
            room: &room,
            ts: now_ms(),
        };
        publish(ctx, &room, &joined, Publish::ToAll);
        self.users.get_mut(&id).expect("joined user").room = room.clone();
        self.send_users(ctx, &room);
    }

    /// Takes `id` out of its room and tells those who are left (and `id`, when `tell_self`).
    fn leave_room(&mut self, ctx: &mut Context<'_>, id: ConnectionId, tell_self: bool) {
        let user = &self.users[&id];
        let (name, room) = (user.name.clone(), user.room.clone());
        if let Some(members) = self.rooms.get_mut(&room) {
            members.remove(&id);
            if members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        let left = Event::Left {
            name: &name,
            room: &room,
            ts: now_ms(),
        };
        let to = if tell_self {
            Publish::ToAll
        } else {
            Publish::ToOthers
        };
        publish(ctx, &room, &left, to);
        let topic = topic(ctx, &room);
        ctx.unsubscribe(&topic);
    }

    fn join(&mut self, ctx: &mut Context<'_>, name: String, room: Option<String>) {
        let id = ctx.id();
        if let Some(user) = self.users.get(&id) {
            return refuse(
                ctx,
                ErrorCode::AlreadyJoined,
                format!("already joined as {}", user.name),
            );
        }
        if !valid_name(&name) {
            return refuse(
                ctx,
                ErrorCode::BadName,
                "a name is 1-32 characters, no control characters or surrounding spaces",
            );
        }
        let room = room.unwrap_or_else(|| DEFAULT_ROOM.to_string());
        if !valid_name(&room) {
            return refuse(
                ctx,
                ErrorCode::BadRoom,
                "a room name is 1-32 characters, no control characters or surrounding spaces",
            );
        }
        let key = name.to_lowercase();
        if self.by_name.contains_key(&key) {
            return refuse(
                ctx,
                ErrorCode::NameTaken,
                format!("{name} is taken (names ignore case)"),
            );
        }
        self.by_name.insert(key, id);
        self.users.insert(
            id,
            User {
                name,
                room: String::new(),
            },
        );
        self.enter(ctx, room);
    }

    fn handle(&mut self, ctx: &mut Context<'_>, request: Request) {
        let id = ctx.id();
        let Some(user) = self.users.get(&id) else {
            return match request {
                Request::Join { name, room } => self.join(ctx, name, room),
                _ => refuse(ctx, ErrorCode::NotJoined, "send join first"),
            };
        };
        let (name, room) = (user.name.clone(), user.room.clone());
        match request {
            Request::Join { name, room } => self.join(ctx, name, room),
            Request::Message { text } | Request::Pm { text, .. } if text.len() > MAX_TEXT_BYTES => {
                refuse(
                    ctx,
                    ErrorCode::BadRequest,
                    format!("text is longer than {MAX_TEXT_BYTES} bytes"),
                );
            }
            Request::Message { text } => {
                let event = Event::Message {
                    from: &name,
                    room: &room,
                    text: &text,
                    ts: now_ms(),
                };
                publish(ctx, &room, &event, Publish::ToAll);
            }
            Request::Pm { to, text } => match self.by_name.get(&to.to_lowercase()) {
                None => refuse(ctx, ErrorCode::UnknownUser, format!("no user named {to}")),
                Some(&recipient) => {
                    let to = &self.users[&recipient].name;
                    let event = Event::Pm {
                        from: &name,
                        to,
                        text: &text,
                        ts: now_ms(),
                    };
                    let receivers: BTreeSet<ConnectionId> = [recipient, id].into();
                    send(ctx, receivers, &event);
                }
            },
            Request::Typing { active } => {
                let event = Event::Typing {
                    name: &name,
                    active,
                    ts: now_ms(),
                };
                publish(ctx, &room, &event, Publish::ToOthers);
            }
            Request::Room { room: next } if !valid_name(&next) => {
                refuse(
                    ctx,
                    ErrorCode::BadRoom,
                    "a room name is 1-32 characters, no control characters or surrounding spaces",
                );
            }
            Request::Room { room: next } if next == room => self.send_users(ctx, &room),
            Request::Room { room: next } => {
                self.leave_room(ctx, id, true);
                self.enter(ctx, next);
            }
            Request::List => self.send_users(ctx, &room),
        }
    }
}

impl Chat {
    /// The shared state. A handler panic while it was held (isolated by the server) may have
    /// left one user half-joined; the chat goes on rather than fail every other user.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        match serde_json::from_str::<Request>(text) {
            Ok(request) => self.state().handle(ctx, request),
            Err(e) => refuse(ctx, ErrorCode::BadRequest, format!("bad request: {e}")),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, _code: CloseCode, _reason: &str) {
        let id = ctx.id();
        let mut state = self.state();
        if state.users.contains_key(&id) {
            state.leave_room(ctx, id, false);
            let user = state.users.remove(&id).expect("checked above");
            state.by_name.remove(&user.name.to_lowercase());
        }
    }
}
