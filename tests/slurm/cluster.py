"""A private two-node SLURM cluster on loopback, built from the installed packages.

One ``slurmctld`` and two ``slurmd`` (``-N n1``, ``-N n2``) run in the foreground as
children of the test process, each node with its own port and ``NodeAddr=127.0.0.1``.
Everything they write lives in one temporary directory. Verified on Debian 12's
slurm-wlm 22.05.8 (which accepts ``slurmd -N`` for several daemons on one host):

* ``AuthType=auth/none`` + ``CredType=cred/none``: no munge daemon or key is needed for a
  single-host test cluster (the plugins ship in slurm-wlm-basic-plugins).
* ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``: no cgroups in a
  container.
* ``AuthInfo=cred_expire=5``: a requeued job may not start before the old job's
  credentials expire (120 s by default), far too long for a test.
* ``sched_interval=1,bf_interval=1``: a requeued job becoming eligible is a change of
  time, not of state, so nothing wakes the scheduler; the periodic passes (60 s and 30 s
  by default) then decide when it starts. One second keeps the requeue test short.

Teardown is by PID only: cancel our jobs, stop the three daemons we started, then kill
any leftover process whose environment names this cluster's ``slurm.conf`` (job steps
are reparented to init, so they are found by that mark, never by name).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h

SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "scancel", "sinfo")
NODES = ("n1", "n2")


def missing_binaries() -> list[str]:
    """The SLURM programs this fixture needs that are not on PATH (or in /usr/sbin)."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [b for b in SLURM_BINARIES if shutil.which(b, path=search) is None]


def unavailable_reason() -> str | None:
    """Why this machine cannot run the private cluster, or None when it can."""
    missing = missing_binaries()
    if missing:
        return (f"SLURM binaries not installed ({', '.join(missing)}); "
                "run tests/slurm/install_slurm.sh as root (apt: slurm-wlm munge)")
    if os.geteuid() != 0:
        return "the private SLURM cluster runs slurmd as SlurmUser=root: needs root"
    return None


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now; all held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _set_subreaper(on: bool) -> None:
    """Make this process adopt orphaned descendants (slurmd double-forks its slurmstepd).

    Where PID 1 does not reap (some container inits), finished job steps would otherwise
    stay behind as zombies; as their subreaper we reap them ourselves in stop().
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: nothing to adopt, nothing to reap


def _reap_adopted(known: set[int]) -> None:
    """Reap finished children we adopted (never a Popen we still track)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in known:
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            try:
                os.waitpid(int(proc.name), os.WNOHANG)
            except ChildProcessError:
                pass


def _slurm_conf(root: Path, ctld_port: int, node_ports: list[int]) -> str:
    """The cluster's slurm.conf; CPUs=1 per node stays below the real core count so
    slurmd does not drain the node for having less hardware than configured."""
    lines = [
        "ClusterName=darklight-test",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={node_ports[0]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/none",
        "CredType=cred/none",
        "AuthInfo=cred_expire=5",  # 5 s is the lowest accepted; below it SLURM uses 120
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool/%n",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.%n.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.%n.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=bf_interval=1,sched_interval=1",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "JobCompType=jobcomp/none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "ReturnToService=2",
        "JobRequeue=1",
        "MailProg=/bin/true",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "MinJobAge=600",
        "KillWait=10",
    ]
    for name, port in zip(NODES, node_ports):
        lines.append(
            f"NodeName={name} NodeAddr=127.0.0.1 Port={port} CPUs=1 RealMemory=1000 State=UNKNOWN"
        )
    lines.append(f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


@dataclass
class LocalSlurmCluster:
    """The running cluster: its directory, config, daemons and the environment that
    points SLURM client commands (and the jobs they submit) at it."""

    root: Path
    conf: Path
    env: dict[str, str]
    daemons: list[subprocess.Popen] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, timeout: float = 30.0) -> "LocalSlurmCluster":
        """Write the config, start slurmctld and two slurmd, wait until both nodes idle."""
        root = Path(tempfile.mkdtemp(prefix="darklight-slurm-"))
        for sub in ("state", "log", *(f"spool/{n}" for n in NODES)):
            (root / sub).mkdir(parents=True)
        ctld_port, *node_ports = free_ports(1 + len(NODES))
        conf = root / "slurm.conf"
        conf.write_text(_slurm_conf(root, ctld_port, node_ports))
        env = dict(os.environ, SLURM_CONF=str(conf))
        env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
        cluster = cls(root=root, conf=conf, env=env)
        _set_subreaper(True)
        try:
            cluster._spawn(["slurmctld", "-D", "-i", "-f", str(conf)], "slurmctld")
            for node in NODES:
                cluster._spawn(["slurmd", "-D", "-N", node, "-f", str(conf)], f"slurmd-{node}")
            cluster._wait_idle(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, argv: list[str], name: str) -> None:
        out = open(self.root / "log" / f"{name}.stdout", "wb")
        self.daemons.append(
            subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        )
        out.close()

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            for p in self.daemons:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}: {self.logs()}")
            out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if all(states.get(n) == "idle" for n in NODES):
                return
            time.sleep(0.5)
        raise TimeoutError(f"nodes not idle after {timeout}s: {out!r}\n{self.logs()}")

    def run(self, argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(argv, env=kw.pop("env", self.env), text=True,
                              capture_output=True, check=check, timeout=30, **kw)

    def sbatch(self, args: list[str], env: dict[str, str] | None = None,
               cwd: Path | None = None) -> str:
        """Submit a batch job and return its id."""
        res = self.run(["sbatch", "--parsable", *args], env=env or self.env, cwd=cwd)
        job_id = res.stdout.strip().split(";")[0]
        self.jobs.append(job_id)
        return job_id

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict of its Key=Value fields (one-liner form)."""
        out = self.run(["scontrol", "-o", "show", "job", job_id]).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait_job(self, job_id: str, timeout: float) -> dict[str, str]:
        """Wait until the job reaches a final state; return its scontrol fields."""
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                 "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job_info(job_id)
            if info.get("JobState") in final:
                return info
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} not finished after {timeout}s: {info}")

    def logs(self) -> str:
        """The tail of every daemon log, for failure messages."""
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace").splitlines()
            parts.append(f"== {f.name}\n" + "\n".join(text[-15:]))
        return "\n".join(parts)

    def leftover_pids(self, include_daemon_children: bool = True) -> list[int]:
        """Processes (job steps, trainers) that carry this cluster's SLURM_CONF.

        The daemons' own children (slurmctld's slurmscriptd) carry it too; they go
        away with their parent and are skipped while waiting for jobs to drain.
        """
        mark = f"SLURM_CONF={self.conf}".encode()
        daemons = {p.pid for p in self.daemons}
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) in daemons | {os.getpid()}:
                continue
            try:
                if mark not in (proc / "environ").read_bytes().split(b"\0"):
                    continue
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if include_daemon_children or ppid not in daemons:
                pids.append(int(proc.name))
        return pids

    def stop(self) -> None:
        """Cancel our jobs, stop the daemons, kill leftovers by PID, remove the directory."""
        if self.jobs:
            self.run(["scancel", *self.jobs], check=False)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.leftover_pids(False):
                time.sleep(0.5)
        for p in reversed(self.daemons):  # slurmd first, then slurmctld
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.daemons:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)  # let the killed ones turn into zombies before reaping
        _reap_adopted({p.pid for p in self.daemons})
        _set_subreaper(False)
        shutil.rmtree(self.root, ignore_errors=True)
