/* gitinfo: which git commit a DAG file belongs to, and whether it differs.
 *
 * The commit is read from the work tree's .git directly (HEAD, then the
 * loose ref or packed-refs; a ".git" file with "gitdir:" for worktrees and
 * submodules): no git program and no library.  Whether the file differs
 * from that commit needs git's index and objects, so it asks the git
 * program, `git --no-optional-locks -C DIR status --porcelain -- FILE`,
 * spawned with an argv (never a shell) and given two seconds; without git,
 * or when git fails, the answer is "unknown".  Both are looked up only when
 * a new version row is first recorded. */
#ifndef KILN_GITINFO_H
#define KILN_GITINFO_H

/* The commit (40 hex + NUL) checked out in the work tree holding path (a
 * file or folder).  Returns 1 when found, 0 when path is in no git work tree
 * or the branch has no commit yet. */
int git_head_commit(const char *path, char out[41]);

/* 1: the file differs from HEAD (modified, staged or untracked); 0: it does
 * not; -1: unknown (no git program, not a work tree, git failed). */
int git_file_dirty(const char *file);

#endif
