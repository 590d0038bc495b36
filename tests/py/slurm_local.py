"""A throwaway single-node Slurm cluster on localhost, for tests.

Tests of code that talks to Slurm (sbatch arrays, dependencies, requeue)
need the real scheduler, not a mock.  Cluster(root).start() runs munged,
slurmctld and slurmd (Debian slurm-wlm 22.05 + munge) as root with
everything (munge key and socket, slurm.conf, state, spool, logs, pids)
under `root`, on free TCP ports, so it touches neither /etc/slurm,
/etc/munge nor a real cluster.  Clients find it through SLURM_CONF (see
env()/run()); clients and daemons find munged through AuthInfo=socket=.
No systemd or cgroups needed: proctrack/linuxproc, task/none.  No
accounting: finished jobs stay visible to `scontrol show job` for MinJobAge
seconds and are appended to root/jobcomp.log (jobcomp/filetxt) for good.
If anything cannot start, start() raises SlurmUnavailable (tests can SKIP).
"""
import os
import shutil
import signal
import socket
import subprocess
import time

SBIN = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]


class SlurmUnavailable(Exception):
    pass


def _which(name):
    path = os.pathsep.join(SBIN + os.environ.get("PATH", "").split(os.pathsep))
    return shutil.which(name, path=path)


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    def __init__(self, root, cpus=4):
        self.root = os.path.abspath(root)
        self.cpus = int(cpus)
        self.conf = os.path.join(self.root, "slurm.conf")
        self.jobcomp = os.path.join(self.root, "jobcomp.log")
        self.procs = {}  # name -> Popen
        self._logs = []
        self._marker = "SLURM_LOCAL_TEST=" + self.root

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _p(self, *parts):
        return os.path.join(self.root, *parts)

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SCANCEL_"))}
        e["SLURM_CONF"] = self.conf
        e["PATH"] = os.pathsep.join([e.get("PATH", "")] + SBIN)
        return e

    def run(self, *args, check=True, timeout=60):
        exe = _which(args[0]) or args[0]
        return subprocess.run([exe] + [str(a) for a in args[1:]], env=self.env(), text=True,
                              capture_output=True, check=check, timeout=timeout)

    def _write_conf(self):
        ctld_port, slurmd_port = _free_ports(2)
        sock = self._p("munge", "munge.socket")
        lines = [
            "ClusterName=localtest",
            "SlurmctldHost=localhost(127.0.0.1)",
            "SlurmctldPort=%d" % ctld_port,
            "SlurmdPort=%d" % slurmd_port,
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire also delays a requeued job's restart (default 120 s; minimum 5)
            "AuthInfo=socket=%s,cred_expire=5" % sock,
            "StateSaveLocation=%s" % self._p("state"),
            "SlurmdSpoolDir=%s" % self._p("spool"),
            "SlurmctldPidFile=%s" % self._p("run", "slurmctld.pid"),
            "SlurmdPidFile=%s" % self._p("run", "slurmd.pid"),
            "SlurmctldLogFile=%s" % self._p("log", "slurmctld.log"),
            "SlurmdLogFile=%s" % self._p("log", "slurmd.log"),
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "PlugStackConfig=%s" % self._p("plugstack.conf"),
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            "JobCompLoc=%s" % self.jobcomp,
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1,sched_interval=2",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "JobRequeue=1",
            "MinJobAge=300",
            "KillWait=2",
            "InactiveLimit=0",
            "MpiDefault=none",
            "NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=%d RealMemory=1000 "
            "State=UNKNOWN" % self.cpus,
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        open(self._p("plugstack.conf"), "w").close()
        return sock

    def _spawn(self, name, argv):
        log = open(self._p("log", name + ".out"), "ab")
        self._logs.append(log)
        env = self.env()
        env["SLURM_LOCAL_TEST"] = self.root  # = self._marker, inherited by slurmstepd
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True, cwd=self.root)

    def _wait(self, what, ok, deadline):
        while time.time() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmUnavailable("%s exited with %s while waiting for %s (logs in %s)"
                                           % (name, p.returncode, what, self._p("log")))
            if ok():
                return
            time.sleep(0.2)
        raise SlurmUnavailable("timed out waiting for %s (logs in %s)" % (what, self._p("log")))

    def _node_state(self):
        r = self.run("scontrol", "-o", "show", "node", "localhost", check=False, timeout=15)
        for tok in r.stdout.split():
            if tok.startswith("State="):
                return tok[6:]
        return ""

    def start(self, timeout=60):
        try:
            self._start(timeout)
        except SlurmUnavailable:
            self.stop()
            raise
        except (OSError, subprocess.SubprocessError) as e:
            self.stop()
            raise SlurmUnavailable("%s: %s" % (type(e).__name__, e))

    def _start(self, timeout):
        deadline = time.time() + timeout
        if os.geteuid() != 0:
            raise SlurmUnavailable("must run as root (daemons run as SlurmUser=root)")
        exes = {}
        for b in ("munged", "mungekey", "slurmctld", "slurmd", "slurmstepd", "sbatch", "scontrol"):
            exes[b] = _which(b)
            if not exes[b]:
                raise SlurmUnavailable("%s not found (apt-get install slurm-wlm munge)" % b)
        if self.procs:
            raise SlurmUnavailable("cluster already started")
        sock = self._p("munge", "munge.socket")
        if len(sock.encode()) >= 100:
            raise SlurmUnavailable("munge socket path too long for a unix socket: " + sock)
        self._kill_strays()  # daemons/jobs left by an earlier run on this root
        os.makedirs(self.root, exist_ok=True)
        for d in ("munge", "state", "spool", "run", "log"):  # fresh state on every start
            shutil.rmtree(self._p(d), ignore_errors=True)
            os.makedirs(self._p(d), mode=0o755)
        if os.path.exists(self.jobcomp):
            os.unlink(self.jobcomp)
        self._write_conf()
        key = self._p("munge", "munge.key")
        subprocess.run([exes["mungekey"], "-c", "-k", key], check=True, capture_output=True)
        os.chmod(key, 0o400)
        self._spawn("munged", [exes["munged"], "-F", "--force", "--socket=" + sock, "--key-file=" + key,
                               "--log-file=" + self._p("log", "munged.log"),
                               "--pid-file=" + self._p("munge", "munged.pid"),
                               "--seed-file=" + self._p("munge", "munged.seed")])
        self._wait("munged socket", lambda: os.path.exists(sock), deadline)
        # -c: ignore any saved state, -i: ignore unreadable state files
        self._spawn("slurmctld", [exes["slurmctld"], "-D", "-c", "-i", "-f", self.conf])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False, timeout=15)
                   .stdout.find("is UP") >= 0, deadline)
        self._spawn("slurmd", [exes["slurmd"], "-D", "-N", "localhost", "-f", self.conf])
        self._wait("node localhost IDLE", lambda: self._node_state().startswith("IDLE"), deadline)

    def _stray_pids(self):
        """slurmstepd and job processes of this cluster, which outlive slurmd:
        their environment names our slurm.conf and has the daemons' marker or
        a SLURM_JOB_ID (so a client or shell that merely exports SLURM_CONF
        is spared)."""
        conf = ("SLURM_CONF=" + self.conf).encode()
        mine = {os.getpid(), os.getppid()} | {p.pid for p in self.procs.values()}
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) in mine:
                continue
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if conf in env and (self._marker.encode() in env
                                or any(v.startswith(b"SLURM_JOB_ID=") for v in env)):
                out.append(int(d))
        return out

    def _kill_strays(self):
        for _ in range(5):
            pids = self._stray_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)

    def stop(self):
        """slurmd, slurmctld, then every stray (slurmstepd, job scripts, daemons
        left by an earlier crashed run on this root), then munged."""
        for name in ("slurmd", "slurmctld", None, "munged"):
            if name is None:
                self._kill_strays()
                continue
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.procs = {}
        for log in self._logs:
            log.close()
        self._logs = []
