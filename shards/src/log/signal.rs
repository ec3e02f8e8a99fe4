//! Same-thread signalling between appenders, compaction, `close` and the flusher.
//!
//! Everything here lives on one glommio executor, so plain `Cell`/`RefCell` and wakers do;
//! no cross-thread primitive is needed.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::LogError;

/// A one-shot outcome that any number of tasks can await: the durability of one batch, or
/// the end of the flusher.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    outcome: RefCell<Option<Result<(), LogError>>>,
    wakers: RefCell<Vec<Waker>>,
}

impl Completion {
    pub(crate) fn new() -> Rc<Completion> {
        Rc::new(Completion::default())
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    /// Sets the outcome and wakes every waiter. Completing twice is a bug.
    pub(crate) fn complete(&self, outcome: Result<(), LogError>) {
        let previous = self.outcome.borrow_mut().replace(outcome);
        assert!(previous.is_none(), "a completion completed twice");
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves with the outcome once it is set.
    pub(crate) fn wait(self: &Rc<Self>) -> CompletionWait {
        CompletionWait { completion: Rc::clone(self), slot: None }
    }
}

/// The future returned by [`Completion::wait`]. It keeps the index of its waker so that a
/// spurious poll replaces the waker instead of adding one more.
#[derive(Debug)]
pub(crate) struct CompletionWait {
    completion: Rc<Completion>,
    slot: Option<usize>,
}

impl Future for CompletionWait {
    type Output = Result<(), LogError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.completion.outcome.borrow().as_ref() {
            return Poll::Ready(outcome.clone());
        }
        let mut wakers = self.completion.wakers.borrow_mut();
        // The list is drained only when the outcome is set, so an index we pushed while the
        // outcome was unset is still ours.
        match self.slot {
            Some(slot) => wakers[slot].clone_from(context.waker()),
            None => {
                wakers.push(context.waker().clone());
                let slot = wakers.len() - 1;
                drop(wakers);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

/// A level-triggered wake-up for the single flusher task: `notify` sets a flag that the next
/// `notified` consumes, so a notification sent while the flusher is busy is not lost.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once `notify` has been called since the last time this resolved. Only one
    /// task (the flusher) may wait on it.
    pub(crate) fn notified(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |context| {
            if self.notified.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(context.waker().clone());
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn completion_hands_the_outcome_to_every_waiter() {
        let completion = Completion::new();
        let mut first = Box::pin(completion.wait());
        let mut second = Box::pin(completion.wait());
        let mut context = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut context).is_pending());
        assert!(first.as_mut().poll(&mut context).is_pending());
        assert!(second.as_mut().poll(&mut context).is_pending());
        assert_eq!(completion.wakers.borrow().len(), 2);
        completion.complete(Err(LogError::Closed));
        assert!(matches!(first.as_mut().poll(&mut context), Poll::Ready(Err(LogError::Closed))));
        assert!(matches!(second.as_mut().poll(&mut context), Poll::Ready(Err(LogError::Closed))));
    }

    #[test]
    fn notify_before_wait_is_not_lost() {
        let notify = Notify::default();
        notify.notify();
        let mut context = Context::from_waker(Waker::noop());
        let mut first = Box::pin(notify.notified());
        assert!(first.as_mut().poll(&mut context).is_ready());
        let mut second = Box::pin(notify.notified());
        assert!(second.as_mut().poll(&mut context).is_pending());
    }
}
