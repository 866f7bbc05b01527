/* shepherd: the long-lived process that spawns local tasks for the daemon.
 *
 * Why: a task must outlive a kill -9 of the daemon, and its exit status must
 * not be lost.  One shepherd per home folder (flock on HOME/shepherd.lock)
 * listens on HOME/shepherd.sock (SOCK_SEQPACKET), spawns each try with
 * posix_spawn in its own process group, is the child subreaper of everything
 * below it, and appends each exit status to HOME/shepherd.journal (one
 * write() of one line; a line without its newline is not an answer) before
 * reporting it.  A restarted daemon reads the journal and asks the shepherd
 * about the rest of the tries it had started.  The shepherd exits by itself
 * when no daemon is connected and no task is running for a while.
 *
 * The protocol is private to executors/local.c and shepherd.c. */
#ifndef KILN_SHEPHERD_H
#define KILN_SHEPHERD_H

/* Entry point of "kiln shepherd --home HOME"; returns the process exit code. */
int shepherd_main(const char *home);

#endif
