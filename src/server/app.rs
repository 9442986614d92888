//! What the loop serves: the configuration, the routes and the page at `GET /`.

use crate::config::Config;
use crate::handler::Handler;

/// A path and the handler serving it.
pub(crate) struct Route {
    pub(crate) path: String,
    pub(crate) handler: Box<dyn Handler + Send>,
}

/// Everything a connection needs from the server while it handles input.
pub(crate) struct App {
    pub(crate) config: Config,
    pub(crate) routes: Vec<Route>,
    /// Served to a plain `GET /`.
    pub(crate) index_page: Option<Vec<u8>>,
}

impl App {
    /// The route serving `path`, if any.
    pub(crate) fn route_for(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|route| route.path == path)
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.routes.iter().map(|r| r.path.as_str()).collect();
        f.debug_struct("App")
            .field("config", &self.config)
            .field("routes", &paths)
            .finish()
    }
}
