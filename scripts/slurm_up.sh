#!/usr/bin/env bash
# A real single-node Slurm on this machine, for the Slurm tests (tests/test_submitit_job.py).
#
#   bash scripts/slurm_up.sh          # install (root + apt) if missing, start munged/slurmctld/slurmd, wait for the node
#   bash scripts/slurm_up.sh --check  # exit 0 when the cluster answers and its node is usable, else 1
#   bash scripts/slurm_up.sh --two-nodes  # also a separate 2-node cluster on this host (two slurmd,
#                                         # `slurmd -N`); prints its SLURM_CONF (multi-node tests)
#
# Exit codes: 0 up, 1 failed (see /tmp/mlsystem-slurm.log), 3 not possible here (Slurm missing and
# not root with apt-get). Idempotent: a running cluster is left as it is.
#
# No accounting daemon (slurmdbd + MariaDB): MLSystem reads job states from `squeue` while a job
# is known to the controller and from the job's own records afterwards (submitit's result file,
# the experiment's state), see MLSystem/executors/submitit_job.py. `sacct` therefore fails here,
# as it does on clusters without accounting.
set -uo pipefail
LOG=/tmp/mlsystem-slurm.log
CONF=/etc/slurm/slurm.conf
MARK="# written by MLSystem scripts/slurm_up.sh"

node_ready() {
  local state
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
  case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

if [ "${1:-}" = "--check" ]; then
  command -v sinfo >/dev/null && node_ready
  exit $?
fi

# A second cluster for multi-node jobs: two slurmd daemons on this one host (Debian's Slurm is built
# with --enable-multiple-slurmd: `slurmd -N name`, one Port per node, %n in the spool/pid/log paths),
# on ports of its own so the single-node cluster is untouched. Node names need not resolve
# (NodeAddr=127.0.0.1); a job's MASTER_ADDR must then be given (127.0.0.1) - on a real cluster
# Lightning takes the first node's name from SLURM_NODELIST.
TWO=/var/lib/mlsystem-slurm-2nodes
two_ready() {
  [ "$(SLURM_CONF=$TWO/slurm.conf sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated|completing)')" = 2 ]
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# The slurm.conf lines both clusters share. Linux process tracking and no task plugin need no
# cgroups (containers often have none). A requeued job may start again only once its old
# credential expired (Slurm sets EligibleTime = requeue + cred_expire, default 120 s); 20 s keeps
# preemption tests short.
common_conf() {
  cat <<'COMMON'
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=20
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
COMMON
}
if [ "${1:-}" = "--two-nodes" ]; then
  bash "$0" >&2 || exit $?  # munge and the single-node cluster first (installs Slurm when needed)
  if ! two_ready; then
    mkdir -p $TWO/state $TWO/log $TWO/spool/mlsn1 $TWO/spool/mlsn2
    host=$(hostname -s)
    cat >$TWO/slurm.conf <<CONF
$MARK
ClusterName=mlsystem2
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=6900
$(common_conf)
ReturnToService=2
StateSaveLocation=$TWO/state
SlurmdSpoolDir=$TWO/spool/%n
SlurmctldPidFile=$TWO/slurmctld.pid
SlurmdPidFile=$TWO/slurmd-%n.pid
SlurmctldLogFile=$TWO/log/slurmctld.log
SlurmdLogFile=$TWO/log/slurmd-%n.log
KillWait=10
MinJobAge=300
NodeName=mlsn1 NodeHostname=$host NodeAddr=127.0.0.1 Port=6911 CPUs=1 RealMemory=2000 State=UNKNOWN
NodeName=mlsn2 NodeHostname=$host NodeAddr=127.0.0.1 Port=6912 CPUs=1 RealMemory=2000 State=UNKNOWN
PartitionName=two Nodes=mlsn1,mlsn2 Default=YES MaxTime=INFINITE State=UP
CONF
    alive $TWO/slurmctld.pid || slurmctld -f $TWO/slurm.conf >>"$LOG" 2>&1
    for n in mlsn1 mlsn2; do alive $TWO/slurmd-$n.pid || slurmd -f $TWO/slurm.conf -N $n >>"$LOG" 2>&1; done
    for _ in $(seq 300); do
      two_ready && break
      SLURM_CONF=$TWO/slurm.conf scontrol update nodename=mlsn1,mlsn2 state=resume >>"$LOG" 2>&1 || true
      sleep 0.2
    done
  fi
  two_ready || { echo "[slurm] the 2-node cluster did not come up (see $LOG, $TWO/log/)" >&2; exit 1; }
  echo "$TWO/slurm.conf"
  exit 0
fi

if command -v sinfo >/dev/null && node_ready; then
  echo "[slurm] already up: $(sinfo -h -o '%P %D %T %c' | head -1)"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "[slurm] slurmctld/munged missing and not root with apt-get: cannot start a local Slurm" >&2
    exit 3
  fi
  echo "[slurm] installing slurm-wlm + munge (about a minute)"
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >>"$LOG" 2>&1; then
    echo "[slurm] apt-get failed (see $LOG)" >&2
    exit 1
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "[slurm] starting the daemons needs root" >&2
  exit 3
fi

host=$(hostname -s)
# munge: a random key owned by munge, then the daemon (--force: it refuses some setups otherwise).
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged --force >>"$LOG" 2>&1 || munged --force >>"$LOG" 2>&1
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

# A minimal slurm.conf: one node with this machine's CPUs and memory, one default partition.
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
if [ ! -f "$CONF" ] || grep -q "^$MARK" "$CONF"; then
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
$MARK
ClusterName=mlsystem
SlurmctldHost=$host
$(common_conf)
SchedulerType=sched/backfill
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
MinJobAge=300
NodeName=$host CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# by pid file: the 2-node cluster's daemons have the same names
alive /run/slurmctld.pid || slurmctld >>"$LOG" 2>&1
alive /run/slurmd.pid || slurmd >>"$LOG" 2>&1
for _ in $(seq 300); do
  if node_ready; then
    echo "[slurm] up: $(sinfo -h -o '%P %D %T %c' | head -1)"
    exit 0
  fi
  # A node left down by an earlier run (or not responding at first) is brought back.
  if sinfo -h -N -o %T 2>/dev/null | grep -qE "down|drain|unknown"; then
    scontrol update nodename="$host" state=resume >>"$LOG" 2>&1 || true
  fi
  sleep 0.2
done
echo "[slurm] the node did not become usable within 60 s (see $LOG and /var/log/slurm/)" >&2
sinfo >&2 || true
exit 1
