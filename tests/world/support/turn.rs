//! Turns on the world. The tests share one long-lived world and run in parallel in one
//! process; most of them work in their own namespaces and zones and share it freely, but a
//! few change it for everyone (they stop and restart a world process, or cap the
//! apiserver's CPU) and must have it alone. [`World::from_env`](super::World::from_env)
//! takes a shared turn for the test's thread; [`alone`] takes the world alone, waiting for
//! every shared turn to end and holding new ones back meanwhile (so an alone test is not
//! starved). A turn lasts until the test's thread ends: libtest runs every test on a thread
//! of its own, and a `#[tokio::test]` body runs on it. A thread the test starts shares
//! the test's turn through [`lend`]; a turn of its own could wait behind an alone test that
//! waits for this one.

use std::cell::RefCell;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// How a test has the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    Shared,
    Alone,
}

struct Turns {
    sharing: usize,
    alone: bool,
    waiting_alone: usize,
}

static TURNS: Mutex<Turns> = Mutex::new(Turns {
    sharing: 0,
    alone: false,
    waiting_alone: 0,
});
static CHANGED: Condvar = Condvar::new();

fn turns() -> MutexGuard<'static, Turns> {
    TURNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's turn: its own, given back when the thread ends, or the one of the test
/// that started the thread (`lent`).
struct ThreadTurn {
    turn: Turn,
    lent: bool,
}

impl Drop for ThreadTurn {
    fn drop(&mut self) {
        if self.lent {
            return;
        }
        let mut turns = turns();
        match self.turn {
            Turn::Shared => turns.sharing -= 1,
            Turn::Alone => turns.alone = false,
        }
        CHANGED.notify_all();
    }
}

thread_local! {
    static HELD: RefCell<Option<ThreadTurn>> = const { RefCell::new(None) };
}

fn held() -> Option<Turn> {
    HELD.with(|held| held.borrow().as_ref().map(|t| t.turn))
}

fn hold(turn: Turn, lent: bool) {
    HELD.with(|held| *held.borrow_mut() = Some(ThreadTurn { turn, lent }));
}

fn take(turn: Turn) {
    match (held(), turn) {
        (Some(_), Turn::Shared) | (Some(Turn::Alone), Turn::Alone) => return,
        (Some(Turn::Shared), Turn::Alone) => panic!(
            "this test already shares the world: a test that changes the world for \
             everyone calls support::alone() before anything else of the world"
        ),
        (None, _) => {}
    }
    let mut turns = turns();
    match turn {
        Turn::Shared => {
            turns = CHANGED
                .wait_while(turns, |t| t.alone || t.waiting_alone > 0)
                .unwrap_or_else(PoisonError::into_inner);
            turns.sharing += 1;
        }
        Turn::Alone => {
            turns.waiting_alone += 1;
            turns = CHANGED
                .wait_while(turns, |t| t.alone || t.sharing > 0)
                .unwrap_or_else(PoisonError::into_inner);
            turns.waiting_alone -= 1;
            turns.alone = true;
        }
    }
    drop(turns);
    hold(turn, false);
}

/// A shared turn for this test, unless it holds one already.
pub(super) fn share() {
    take(Turn::Shared);
}

/// The world alone for this test, until it ends: for a test that stops a world process or
/// caps the apiserver's CPU. Call it first, before anything else of the world.
pub fn alone() {
    take(Turn::Alone);
}

/// This test's turn, for a thread it starts and waits for ([`Lent::enter`] there).
pub fn lend() -> Lent {
    Lent(held().expect("only a test that has a turn on the world can lend it"))
}

/// A test's turn, lent to a thread it starts; the test must outlive the thread.
pub struct Lent(Turn);

impl Lent {
    /// Makes the lent turn this thread's.
    pub fn enter(self) {
        assert!(held().is_none(), "this thread has a turn of its own");
        hold(self.0, true);
    }
}

/// Panics unless this test has the world alone: what changes the world for everyone
/// checks that it may.
pub(super) fn assert_alone(what: &str) {
    assert!(
        held() == Some(Turn::Alone),
        "{what} changes the world for every test: call support::alone() first"
    );
}
