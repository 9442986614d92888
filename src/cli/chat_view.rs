//! Chat events as console lines.

use serde_json::Value;

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(ts: &Value) -> String {
    let secs = ts.as_u64().unwrap_or(0) / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Readable lines for a chat event; unknown events are shown as their JSON. A room's history
/// is its events, one per line, after a line that says so (nothing when it is empty).
pub fn describe_event(event: &Value) -> String {
    let field = |name: &str| event[name].as_str().unwrap_or("?");
    let time = clock(&event["ts"]);
    match field("type") {
        "joined" => format!("[{time}] * {} joined {}", field("name"), field("room")),
        "left" => format!("[{time}] * {} left {}", field("name"), field("room")),
        "message" => format!("[{time}] <{}> {}", field("from"), field("text")),
        "pm" => format!(
            "[{time}] [pm {} -> {}] {}",
            field("from"),
            field("to"),
            field("text")
        ),
        "typing" if event["active"] == Value::Bool(true) => {
            format!("[{time}] * {} is typing...", field("name"))
        }
        "typing" => format!("[{time}] * {} stopped typing", field("name")),
        "users" => {
            let names: Vec<&str> = event["names"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("[{time}] * in {}: {}", field("room"), names.join(", "))
        }
        "error" => format!("[{time}] ! {}: {}", field("code"), field("message")),
        "history" => {
            let events = event["events"].as_array().map_or(&[][..], Vec::as_slice);
            let mut lines = Vec::new();
            if event["recovered"] == Value::Bool(false) {
                let reason = field("reason");
                lines.push(format!(
                    "* missed events in {} could not be recovered ({reason})",
                    field("room")
                ));
            }
            if !events.is_empty() {
                lines.push(format!("* earlier in {}:", field("room")));
                lines.extend(events.iter().map(describe_event));
            }
            lines.join("\n")
        }
        _ => event.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_naturally() {
        let ts = 3_723_000; // 01:02:03
        let cases = [
            (
                json!({"type":"joined","name":"alice","room":"lobby","ts":ts}),
                "[01:02:03] * alice joined lobby",
            ),
            (
                json!({"type":"message","from":"bob","room":"lobby","text":"hi","ts":ts}),
                "[01:02:03] <bob> hi",
            ),
            (
                json!({"type":"pm","from":"bob","to":"alice","text":"psst","ts":ts}),
                "[01:02:03] [pm bob -> alice] psst",
            ),
            (
                json!({"type":"users","room":"lobby","names":["alice","bob"],"ts":ts}),
                "[01:02:03] * in lobby: alice, bob",
            ),
            (
                json!({"type":"typing","name":"bob","active":true,"ts":ts}),
                "[01:02:03] * bob is typing...",
            ),
            (
                json!({"type":"error","code":"name_taken","message":"alice is taken","ts":ts}),
                "[01:02:03] ! name_taken: alice is taken",
            ),
            (
                json!({"type":"history","room":"lobby","events":[
                    {"type":"message","from":"bob","room":"lobby","text":"hi","ts":ts,"offset":4}
                ],"ts":ts}),
                "* earlier in lobby:\n[01:02:03] <bob> hi",
            ),
            (
                json!({"type":"history","room":"lobby","events":[],"recovered":false,
                    "reason":"no longer kept","ts":ts}),
                "* missed events in lobby could not be recovered (no longer kept)",
            ),
            (
                json!({"type":"history","room":"lobby","events":[],"ts":ts}),
                "",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(describe_event(&event), line);
        }
    }
}
