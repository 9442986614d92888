//! Kept messages (a page of history) as a JSON array, for the apps whose messages are JSON
//! text: each kept message is an object already, so the array is their text joined.

use crate::{HistoryPage, Message};

/// The most bytes of kept messages one reply carries; a page stops before it would pass this
/// (it always carries at least one message), and the client asks for the rest.
pub const MAX_PAGE_BYTES: usize = 256 << 10;

/// The page's messages as a JSON array, as many as fit in [`MAX_PAGE_BYTES`]; and whether
/// messages after the last one given are kept too.
pub(crate) fn json_list(page: &HistoryPage) -> (String, bool) {
    let mut list = String::from("[");
    let mut cut = false;
    let mut count = 0;
    for kept in &page.messages {
        let Message::Text(json) = kept.message() else {
            continue; // the apps' kept messages are JSON text; anything else is not theirs
        };
        if count > 0 && list.len() + json.len() > MAX_PAGE_BYTES {
            cut = true;
            break;
        }
        if count > 0 {
            list.push(',');
        }
        list += json;
        count += 1;
    }
    list.push(']');
    (list, cut || page.has_more())
}
