//! Stopping a run: the shutdown flag every loop of the simulator watches.

use tokio::sync::watch;

/// Waits until the shutdown flag is true; forever if its sender is gone without setting it.
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
