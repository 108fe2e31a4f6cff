#!/bin/sh
# Install SLURM (slurm-wlm, munge) for tests/slurm when it is missing and we can.
#
# Idempotent and quiet; always exits 0 so `make test` never fails here: it does nothing
# when the binaries are already there, when not root, or when there is no apt-get. The
# tests skip themselves (with the reason) when SLURM is still absent afterwards.
# Installs packages only: no daemon is started here (the test fixture starts its own).
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have slurmctld && have slurmd && have sbatch && have srun && have scontrol; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm.sh: not root, not installing slurm-wlm (SLURM tests will skip)" >&2
    exit 0
fi
if ! have apt-get; then
    echo "install_slurm.sh: no apt-get, not installing slurm-wlm (SLURM tests will skip)" >&2
    exit 0
fi

echo "install_slurm.sh: installing slurm-wlm munge with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 stops the packages' maintainer scripts from starting system daemons
# (a system slurmd/munged would compete with the test cluster); removed afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
        >/tmp/install_slurm.log 2>&1; then
    echo "install_slurm.sh: apt-get failed (see /tmp/install_slurm.log); SLURM tests will skip" >&2
fi
[ "$created_policy" -eq 1 ] && rm -f "$policy"
exit 0
