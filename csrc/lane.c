/* lane.c -- a lane put together: the pipeline and the stages above it.
 *
 * The pipeline (pipeline.c) never calls up into the stages that sit above it
 * (PITCH and IEX decode, snapshot recovery); it is handed them here, as hooks, by the
 * one file that sees them all.  fh_lane_new and fh_lane_new_peer are the
 * public constructors (fh_api.h). */
#include "iex_pipe.h"
#include "pitch_pipe.h"
#include "recovery.h"

static const fh_pipe_upper_t UPPER = {
    .walk_pitch = fh_pipe_walk_pitch,
    .walk_iex = fh_pipe_walk_iex,
    .recovery_ask = fh_recovery_ask,
    .recovery_poll = fh_recovery_poll,
    .recovery_finish = fh_recovery_finish,
};

fh_lane_t *fh_lane_new(const fh_lane_cfg_t *cfg, char *err, size_t errlen)
{
    return fh_pipe_create(cfg, NULL, 0, &UPPER, err, errlen);
}

fh_lane_t *fh_lane_new_peer(fh_lane_t *first, uint32_t lane, char *err, size_t errlen)
{
    if (!first || first->route.lane != 0 || lane == 0 || lane >= first->route.n_lanes) {
        fh_errf(err, errlen, "lane %u of a %u-lane replay does not exist", lane, first ? first->route.n_lanes : 0);
        return NULL;
    }
    return fh_pipe_create(&first->cfg, first, lane, &first->up, err, errlen);
}
