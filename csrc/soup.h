/* soup.h -- SoupBinTCP 4.0 on the wire: NASDAQ's sequenced session over TCP,
 * the transport of GLIMPSE 5.0 snapshots.
 *
 * A logical packet is a u16 big-endian length (of what follows: the type byte
 * and the payload), a type byte and the payload.  TCP gives no boundaries:
 * fh_soup_frame() finds one whole packet at the front of whatever bytes have
 * arrived, however they were segmented, and checks it (known type, exact
 * payload length for the fixed-size ones) before anything is read from it.
 *
 * Server -> client: '+' debug, 'A' login accepted (session Alpha(10), sequence
 * number Numeric(20)), 'J' login rejected (reason Alpha(1): 'A' not
 * authorised, 'S' session not available), 'S' sequenced data, 'U' unsequenced
 * data, 'H' server heartbeat, 'Z' end of session.  Client -> server: '+'
 * debug, 'L' login request (username Alpha(6), password Alpha(10), requested
 * session Alpha(10), requested sequence number Numeric(20)), 'U' unsequenced
 * data, 'R' client heartbeat, 'O' logout request.  Alpha fields are padded on
 * the right with spaces, except the session (left-padded); Numeric fields are
 * ASCII digits left-padded with spaces. */
#ifndef FH_SOUP_H
#define FH_SOUP_H

#include "fh_common.h"

#endif
