/*
 * job.c — validation of job specs. A placer refuses a malformed spec instead of
 * guessing what it meant.
 */
#include <string.h>

#include "scheduler/job.h"

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) {
        size_t n = strlen(msg);
        if (n >= errlen)
            n = errlen - 1;
        memcpy(err, msg, n);
        err[n] = '\0';
    }
    return -1;
}

int job_validate(const struct job_spec *j, char *err, size_t errlen)
{
    if (j->gpus < 0 || j->gpus > JOB_MAX_GPUS)
        return fail(err, errlen, "gpus out of range");
    if (j->cpu_milli < 0 || j->cpu_milli > JOB_MAX_CPU)
        return fail(err, errlen, "cpu_milli out of range");
    if (j->mem_mib < 0 || j->mem_mib > JOB_MAX_MEM)
        return fail(err, errlen, "mem_mib out of range");
    if (j->prio != JOB_RESERVATION && j->prio != JOB_SPOT)
        return fail(err, errlen, "unknown priority class");
    if (j->gpus == 0) {
        if (j->gang)
            return fail(err, errlen, "a gang needs GPUs");
        if (j->gpu_milli != 0)
            return fail(err, errlen, "gpu_milli without gpus");
        return 0;
    }
    if (j->gang) {
        if (j->gpu_milli != 0 && j->gpu_milli != 1000)
            return fail(err, errlen, "a gang takes whole GPUs");
        return 0;
    }
    if (j->gpus > 16)
        return fail(err, errlen, "a non-gang job must fit one node (at most 16 GPUs)");
    if (j->gpu_milli <= 0 || j->gpu_milli > 1000)
        return fail(err, errlen, "gpu_milli must be 1..1000");
    if (j->gpus > 1 && j->gpu_milli != 1000)
        return fail(err, errlen, "a share of a GPU only when gpus is 1");
    return 0;
}
