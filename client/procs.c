/* Child processes for a local cluster; see procs.h. */
#include "procs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ordo_time.h"

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 ? 0 : -errno;
}

int ordo_dir_remove(const char *path)
{
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *ordo_self_exe(char *out, unsigned outlen)
{
	ssize_t n = readlink("/proc/self/exe", out, outlen - 1);
	if (n < 0)
		n = 0;
	out[n] = 0;
	return out;
}

int ordo_procs_start_one(struct ordo_procs *p, const struct cfg_cluster *cl, uint32_t index,
			 const char *cluster_path, const char *exe, const char *logdir,
			 const char *fault)
{
	const struct cfg_node *nd = &cl->nodes[index];
	char id[16], log[512], data[512], format_file[600];
	snprintf(id, sizeof id, "%u", nd->node_id);
	snprintf(log, sizeof log, "%s/node-%u.log", logdir, nd->node_id);
	snprintf(data, sizeof data, "%s/data-%u", logdir, nd->node_id);
	snprintf(format_file, sizeof format_file, "%s/FORMAT", data);
	fflush(NULL);
	if (access(format_file, F_OK) != 0) {
		/* a new node: ordo format its data directory first */
		pid_t f = fork();
		if (f < 0)
			return -errno;
		if (f == 0) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			execl(exe, "ordo", "format", "--cluster", cluster_path, "--node", id,
			      "--data", data, (char *)NULL);
			_exit(127);
		}
		int status;
		if (waitpid(f, &status, 0) != f || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "ordo: formatting node %u's data in %s failed (see %s)\n",
				nd->node_id, data, log);
			return -EIO;
		}
	}
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		const char *argv[16];
		int k = 0;
		if (nd->netns[0]) {
			/* its own network namespace (nic-config/netns.sh made it):
			 * ip netns exec also gives it that namespace's /sys */
			argv[k++] = "ip";
			argv[k++] = "netns";
			argv[k++] = "exec";
			argv[k++] = nd->netns;
			argv[k++] = exe;
		} else {
			argv[k++] = "ordo";
		}
		argv[k++] = nd->role == CFG_ROLE_SEQUENCER ? "sequencer" : "replica";
		argv[k++] = "--cluster";
		argv[k++] = cluster_path;
		argv[k++] = "--node";
		argv[k++] = id;
		argv[k++] = "--data";
		argv[k++] = data;
		if (fault && *fault) {
			argv[k++] = "--fault";
			argv[k++] = fault;
		}
		argv[k] = NULL;
		if (nd->netns[0])
			execvp("ip", (char *const *)argv);
		else
			execv(exe, (char *const *)argv);
		fprintf(stderr, "ordo: cannot run %s: %s\n", nd->netns[0] ? "ip netns exec" : exe,
			strerror(errno));
		_exit(127);
	}
	p->pid[index] = pid;
	p->node_id[index] = nd->node_id;
	if (index >= p->count)
		p->count = index + 1;
	return 0;
}

int ordo_procs_start(struct ordo_procs *p, const struct cfg_cluster *cl, const char *cluster_path,
		     const char *exe, const char *logdir, const char *fault_seq,
		     const char *fault_rep)
{
	memset(p, 0, sizeof *p);
	for (uint32_t i = 0; i < cl->nnodes; i++) {
		const char *fault = cl->nodes[i].role == CFG_ROLE_SEQUENCER ? fault_seq : fault_rep;
		int rc = ordo_procs_start_one(p, cl, i, cluster_path, exe, logdir, fault);
		if (rc) {
			ordo_procs_stop(p);
			return rc;
		}
	}
	return 0;
}

int ordo_procs_wait_ready(struct ordo_procs *p, struct ordo_client *c, const struct cfg_cluster *cl,
			  uint64_t timeout_ns)
{
	uint64_t deadline = ordo_mono_ns() + timeout_ns;
	for (uint32_t i = 0; i < cl->nnodes; i++) {
		for (;;) {
			int status;
			if (p->pid[i] && waitpid(p->pid[i], &status, WNOHANG) == p->pid[i]) {
				p->pid[i] = 0;
				fprintf(stderr, "ordo: node %u exited at start (see its log)\n",
					cl->nodes[i].node_id);
				return -ECHILD;
			}
			struct wire_status_msg s;
			if (ordo_status(c, cl->nodes[i].node_id, &s, 200 * ORDO_NS_PER_MS) == 0 &&
			    (cl->nodes[i].role != CFG_ROLE_SEQUENCER || cl->nodes[i].join ||
			     s.leader_id != 0))
				break; /* a founding sequencer is ready once it knows its
					* group's leader; a joiner waits to be added */
			if (ordo_mono_ns() >= deadline) {
				fprintf(stderr, "ordo: node %u does not answer STATUS_Q\n",
					cl->nodes[i].node_id);
				return -ETIMEDOUT;
			}
		}
	}
	return 0;
}

int ordo_procs_stop(struct ordo_procs *p)
{
	int bad = 0;
	for (uint32_t i = 0; i < p->count; i++)
		if (p->pid[i])
			kill(p->pid[i], SIGTERM);
	uint64_t deadline = ordo_mono_ns() + 5 * ORDO_NS_PER_S;
	for (uint32_t i = 0; i < p->count; i++) {
		if (!p->pid[i])
			continue;
		int status = 0;
		for (;;) {
			pid_t r = waitpid(p->pid[i], &status, WNOHANG);
			if (r == p->pid[i] || r < 0)
				break;
			if (ordo_mono_ns() >= deadline) {
				kill(p->pid[i], SIGKILL);
				waitpid(p->pid[i], &status, 0);
				break;
			}
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
		p->pid[i] = 0;
	}
	return bad;
}
