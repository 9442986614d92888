//! The open-files limit: every connection is a descriptor, so a process's soft limit caps how
//! many it holds. The server and the bench raise it (up to the hard limit, which only root or
//! a service manager can raise) as far as they need.

/// Descriptors a server keeps besides its connections: listeners, the poll, wakers, signals,
/// the cluster's Redis connections, a history file, stdio.
const SERVER_RESERVE: u64 = 64;

/// Raises the soft limit up to what `wanted` descriptors need, as far as the hard limit
/// allows; returns the limit now in force.
pub fn raise_to(wanted: u64) -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(wanted)
}

/// Raises the limit for a server of `max_connections`. If it stays short, returns the
/// connections there is room for: the server's limit, so that the connections past it are
/// answered 503 rather than left unaccepted in the kernel's queue. That is said at INFO when
/// the operator chose the limit, and only at DEBUG for the default (most machines' hard limit
/// is below it, and a start that changes nothing the operator asked for needs no line).
pub fn raise_for_server(max_connections: usize) -> Option<usize> {
    let wanted = max_connections as u64 + SERVER_RESERVE;
    match raise_to(wanted) {
        Ok(limit) if limit >= wanted => None,
        Ok(limit) => {
            let room = limit.saturating_sub(SERVER_RESERVE).max(1) as usize;
            let level = if max_connections == wsloop::Config::default().max_connections {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "this process may open {limit} files (ulimit -n; its hard limit is the \
                 ceiling): room for {room} connections, so that is the connection limit, not \
                 --max-connections {max_connections} (README: Tuning for many connections)"
            );
            Some(room)
        }
        Err(e) => {
            log::warn!("cannot raise the open-files limit: {e}");
            None
        }
    }
}
