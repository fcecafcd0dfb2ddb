#!/bin/bash

#SBATCH --job-name=polyscout.T
#SBATCH --output={run_dir}/submit_scripts/polyscout.T.stdout
#SBATCH --error={run_dir}/submit_scripts/polyscout.T.stderr
#SBATCH --nodes=1
#SBATCH --time=60
#SBATCH --ntasks-per-node=1

#SBATCH --exclusive
#SBATCH --partition=debug
#SBATCH --cpus-per-task=2


export PARSL_CORES=2


export JOBNAME="polyscout.T"

set -e
export CORES=$(getconf _NPROCESSORS_ONLN)
[[ "1" == "1" ]] && echo "Found cores : $CORES"
WORKERCOUNT=1
FAILONANY=0
PIDS=""

CMD() {
process_worker_pool.py --max_workers_per_node=1 -a {addresses} -p {prefetch_capacity} -c 2 -m {mem_per_worker} --poll {poll_period} --port={worker_port} --cert_dir {cert_dir} --logdir={logdir} --logconf={logconf} --block_id={block_id} --hb_period={heartbeat_period} --hb_threshold={heartbeat_threshold} --drain_period={drain_period} --cpu-affinity none --mpi-launcher=mpiexec --available-accelerators
}
for COUNT in $(seq 1 1 $WORKERCOUNT); do
    [[ "1" == "1" ]] && echo "Launching worker: $COUNT"
    CMD $COUNT &
    PIDS="$PIDS $!"
done

ALLFAILED=1
ANYFAILED=0
for PID in $PIDS ; do
    wait $PID
    if [ "$?" != "0" ]; then
        ANYFAILED=1
    else
        ALLFAILED=0
    fi
done

[[ "1" == "1" ]] && echo "All workers done"
if [ "$FAILONANY" == "1" ]; then
    exit $ANYFAILED
else
    exit $ALLFAILED
fi

