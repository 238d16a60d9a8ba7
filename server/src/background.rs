//! The background: the feedback aggregator's thread (`feedback`, which parses and checks event
//! reports, counts them and appends them to the embedded store's feedback log), the threads of
//! the server's tokio runtime (the scheduler, the store's connections, the aggregator's
//! checkpoints), its blocking pool and sled's threads (its log flusher and I/O pool, made from
//! a lowered thread when the store opens: `store::sled`). Check-ins are answered on the HTTP
//! workers, which are not among them.
//!
//! Not the background: each HTTP worker's runtime has its own blocking pool (tokio's
//! `tokio-rt-worker` threads too), used by artifact file I/O (uploads, file opens for
//! downloads). Those threads inherit the worker's priority, idle between uses and end after
//! 10 s without work, so a server under check-in and event load has none.
//!
//! Background threads run at a lower scheduling priority ([`NICE`]): when the machine's cores
//! are all busy, the CPU goes to the check-ins first, and a wave of install reports, which
//! can wait a few milliseconds for its commit, does not take it from them. The background
//! still gets its share (a nice-10 thread has about a tenth of the weight of a nice-0 one),
//! so ingestion keeps up and never starves (bench/README.md, "Install feedback").

/// The nice value of background threads (Linux; 0 is the default, 19 the lowest).
pub const NICE: i32 = 10;

/// Lowers the calling thread's priority to [`NICE`] (a runtime's `on_thread_start`), never
/// raising it (a process started at a higher nice value keeps it). Threads it creates inherit
/// it. Where that is not possible (another OS, a sandbox that forbids it), the thread keeps its
/// priority: nothing else changes.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // On Linux the nice value is per thread: PRIO_PROCESS with a thread id sets that one.
        let me = Some(rustix::thread::gettid());
        if rustix::process::getpriority_process(me).is_ok_and(|now| now < NICE) {
            let _ = rustix::process::setpriority_process(me, NICE);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_at_the_lower_priority_and_others_keep_theirs() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            let own = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
            let child = std::thread::spawn(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
                .join()
                .unwrap()
                .unwrap();
            (own, child)
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (NICE.max(before), NICE.max(before)), "the thread and the threads it makes");
        assert_eq!(rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap(), before);
    }
}
