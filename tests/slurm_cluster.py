"""A throwaway single-node SLURM cluster (slurmctld + slurmd + its own munged) for the SLURM tests, and for
trying the harness's SLURM paths on a laptop before a real cluster:

    apt-get install slurm-wlm munge                  # Debian/Ubuntu packages; start as root
    python -m tests.slurm_cluster start              # prints the folder and `export SLURM_CONF=...`
    export SLURM_CONF=<folder>/slurm.conf            # sbatch, squeue, scontrol, sinfo now talk to it
    python -m tests.slurm_cluster stop <folder>      # stops exactly the daemons `start` started

Everything lives in one folder (config, munge key and socket, state, spool, logs, pid records): the real
cluster's files (/etc/slurm, /etc/munge, /run/munge) are never read or written, and the ports are free ones
picked at start. It refuses to start where a slurmctld or slurmd already runs (this machine may be part of a
real cluster). The node is `hostname -s` with the machine's cores and 80% of its memory, no GPUs; memory is
not a consumable resource (SelectTypeParameters=CR_CPU), so `--mem` only has to fit the node. There is no
accounting database (no slurmdbd), so `sacct` answers nothing here: wait on jobs with `squeue`/`scontrol`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
PACKAGES = "slurm-wlm munge"
INSTALL_HINT = f"install them as root with: apt-get update && apt-get install -y {PACKAGES}"


class ClusterError(RuntimeError):
    """The cluster cannot start here (missing packages, a SLURM daemon already running, a daemon that died)."""


def missing_binaries() -> list[str]:
    """The programs this script needs that are not installed."""
    needed = (*DAEMONS, "sbatch", "squeue", "scontrol", "sinfo", "scancel")
    return [name for name in needed if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def can_install() -> bool:
    """Whether the packages could be installed here: apt-get exists and we are root."""
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def processes(name: str) -> list[int]:
    """Pids of running processes whose command name is `name` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
        if comm == name and state != "Z":
            found.append(int(entry.name))
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (pid + start time name a process uniquely)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path, node: str, cpus: int, memory_mb: int, ports: tuple[int, int]) -> str:
    """A minimal single-node slurm.conf: root runs everything, no cgroups, no accounting."""
    return "\n".join(
        [
            "ClusterName=cortexbench-test",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={folder}/munge/munge.socket",
            f"StateSaveLocation={folder}/state",
            f"SlurmdSpoolDir={folder}/spool",
            f"SlurmctldPidFile={folder}/run/slurmctld.pid",
            f"SlurmdPidFile={folder}/run/slurmd.pid",
            f"SlurmctldLogFile={folder}/log/slurmctld.log",
            f"SlurmdLogFile={folder}/log/slurmd.log",
            f"PlugStackConfig={folder}/plugstack.conf",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",  # seconds between SIGTERM and SIGKILL when a job is cancelled or times out
            "MinJobAge=600",  # finished jobs stay visible to squeue -t all / scontrol show job for 10 minutes
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "MailProg=/bin/true",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


@dataclass
class SlurmCluster:
    """A running throwaway cluster: its folder, node and the daemons it started (pid, start time)."""

    folder: Path
    node: str
    cpus: int
    daemons: dict[str, tuple[int, int]] = field(default_factory=dict)
    stepds_before: list[int] = field(default_factory=list)  # slurmstepd pids that were not ours
    started_s: float = 0.0  # seconds from start() to an idle node

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    def env(self) -> dict[str, str]:
        """Variables that point SLURM's commands (sbatch, squeue, scontrol, ...) at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> str:
        """A SLURM command against this cluster; returns its stdout."""
        done = subprocess.run(command, env={**os.environ, **self.env()}, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False).strip().lower()

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait until the node accepts jobs (idle, not drained or down)."""
        deadline = time.monotonic() + timeout
        while (state := self.node_state()) != "idle":
            self.check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(f"node {self.node} is {state or 'unknown'} after {timeout:.0f} s; {self.log_tail()}")
            time.sleep(0.5)

    def check_alive(self) -> None:
        for name, (pid, started) in self.daemons.items():
            if start_time(pid) != started:
                raise ClusterError(f"{name} (pid {pid}) died; {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for log in sorted((self.folder / "log").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} ---\n" + "\n".join(text))
        return "logs:\n" + "\n".join(parts)

    def save(self) -> None:
        record = asdict(self) | {"folder": str(self.folder)}
        (self.folder / "cluster.json").write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SlurmCluster:
        record = json.loads((Path(folder) / "cluster.json").read_text())
        record["folder"] = Path(record["folder"])
        record["daemons"] = {k: tuple(v) for k, v in record["daemons"].items()}
        return cls(**record)

    @classmethod
    def start(cls, folder: Path | None = None, timeout: float = 120) -> SlurmCluster:
        """Write the config into `folder` (a new temporary folder by default), start munged, slurmctld and
        slurmd, and wait until the node is idle. Refuses where a slurmctld or slurmd already runs."""
        if missing := missing_binaries():
            raise ClusterError(f"SLURM is not installed ({', '.join(missing)} not found); {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise ClusterError("the throwaway cluster runs its daemons as root: start it as root")
        for name in ("slurmctld", "slurmd"):
            if pids := processes(name):
                raise ClusterError(
                    f"a {name} is already running here (pid {', '.join(map(str, pids))}), not started by this "
                    f"script: refusing to start a second cluster next to it. If it is a cluster this script "
                    f"started, stop it with `python -m tests.slurm_cluster stop <its folder>`."
                )
        began = time.monotonic()
        folder = Path(folder or tempfile.mkdtemp(prefix="cortexbench-slurm-")).resolve()
        for sub in ("munge", "state", "spool", "run", "log"):
            (folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
        node = socket.gethostname().split(".")[0]
        cpus = os.cpu_count() or 1
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        cluster = cls(folder, node, cpus, stepds_before=processes("slurmstepd"))
        key = folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (folder / "plugstack.conf").write_text("")
        cluster.conf.write_text(slurm_conf(folder, node, cpus, memory_mb, (free_port(), free_port())))
        munge = folder / "munge"
        commands = {
            "munged": [
                binary("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={munge}/munge.socket",
                f"--pid-file={folder}/run/munged.pid",
                f"--log-file={folder}/log/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
            "slurmctld": [binary("slurmctld"), "-D", "-c", "-f", str(cluster.conf)],
            "slurmd": [binary("slurmd"), "-D", "-f", str(cluster.conf), "-N", node],
        }
        try:
            for name, command in commands.items():
                with open(folder / "log" / f"{name}.out", "ab") as out:
                    proc = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, **cluster.env()},
                        start_new_session=True,  # outlives `start` and is not hit by the terminal's Ctrl-C
                    )
                started = None
                while started is None:
                    started = start_time(proc.pid)
                    time.sleep(0.01)
                cluster.daemons[name] = (proc.pid, started)
                cluster.save()
                if name == "munged":
                    cluster.wait_for(munge / "munge.socket", timeout)
                elif name == "slurmctld":
                    cluster.wait_for_controller(timeout)
            cluster.wait_idle(timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.started_s = round(time.monotonic() - began, 1)
        cluster.save()
        return cluster

    def wait_for(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(f"{path} did not appear within {timeout:.0f} s; {self.log_tail()}")
            time.sleep(0.1)

    def wait_for_controller(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "UP" not in self.run("scontrol", "ping", check=False):
            self.check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(f"slurmctld does not answer after {timeout:.0f} s; {self.log_tail()}")
            time.sleep(0.2)

    def jobs(self) -> list[str]:
        """Ids of the jobs the cluster still holds (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%A", check=False).split()

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, then stop exactly the daemons `start` started (and the job step daemons their
        slurmd left behind), newest first: SIGTERM, then SIGKILL after `timeout` seconds."""
        if "slurmctld" in self.daemons and self.alive("slurmctld") and (jobs := self.jobs()):
            self.run("scancel", *jobs, check=False)
            deadline = time.monotonic() + timeout
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            if name in self.daemons:
                self.terminate(*self.daemons[name], timeout=timeout)
        for pid in set(processes("slurmstepd")) - set(self.stepds_before):
            if (started := start_time(pid)) is not None:
                self.terminate(pid, started, timeout=timeout)

    def alive(self, name: str) -> bool:
        pid, started = self.daemons[name]
        return start_time(pid) == started

    @staticmethod
    def terminate(pid: int, started: int, timeout: float) -> None:
        """SIGTERM the process if it is still the one we started (same pid and start time), SIGKILL if it
        lingers, and reap it when it is our child."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if start_time(pid) != started:
                break
            os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while start_time(pid) == started and time.monotonic() < deadline:
                reap(pid)
                time.sleep(0.1)
        reap(pid)


def reap(pid: int) -> None:
    """Collect the exit status of our child; a daemon started by another process (`stop` run separately from
    `start`) is not our child, and its parent (init) collects it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.slurm_cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a cluster; prints its folder and the SLURM_CONF to export")
    start.add_argument("--folder", type=Path, help="where its files go (default: a new temporary folder)")
    stop = sub.add_parser("stop", help="stop the daemons a `start` started")
    stop.add_argument("folder", type=Path, nargs="?", help="the folder `start` printed (default: $SLURM_CONF's)")
    stop.add_argument("--remove", action="store_true", help="also delete the folder (logs included)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = SlurmCluster.start(args.folder)
            print(f"node {cluster.node} idle after {cluster.started_s} s; files in {cluster.folder}")
            print(f"export SLURM_CONF={cluster.conf}")
            print(f"stop with: python -m tests.slurm_cluster stop {cluster.folder}")
            return 0
        folder = args.folder or (Path(os.environ["SLURM_CONF"]).parent if "SLURM_CONF" in os.environ else None)
        if folder is None or not (folder / "cluster.json").exists():
            parser.error("give the folder `start` printed (it holds cluster.json)")
        SlurmCluster.load(folder).stop()
        if args.remove:
            shutil.rmtree(folder)
        print(f"stopped the cluster of {folder}")
        return 0
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
