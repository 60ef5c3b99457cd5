#pragma once

// Kernel UAPI constants that Debian 12's linux-libc-dev (6.1) lacks, with the
// values from shared/KERNEL_API.md. Each group is defined only when the
// installed headers are older than the kernel that added it, so newer headers
// (where these names are enum constants) win and nothing is redefined.

#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/version.h>

#if __has_include(<linux/netdev.h>)
#include <linux/netdev.h>
#endif

// --- ethtool netlink (KERNEL_API.md section 3) ---

// Rings header-data-split threshold, added in 6.14 (not 6.13).
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 14, 0)
#define ETHTOOL_A_RINGS_HDS_THRESH 17
#define ETHTOOL_A_RINGS_HDS_THRESH_MAX 18
#endif

// RSS_GET and the RSS attribute set: 6.2 (after Debian 12's 6.1 headers).
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
#define ETHTOOL_MSG_RSS_GET 38
#define ETHTOOL_MSG_RSS_GET_REPLY 38
#define ETHTOOL_A_RSS_HEADER 1
#define ETHTOOL_A_RSS_CONTEXT 2
#define ETHTOOL_A_RSS_HFUNC 3
#define ETHTOOL_A_RSS_INDIR 4
#define ETHTOOL_A_RSS_HKEY 5
#endif

// RSS_SET, RSS_CREATE_ACT, RSS_DELETE_ACT and the create reply: 6.17.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define ETHTOOL_MSG_RSS_SET 48
#define ETHTOOL_MSG_RSS_CREATE_ACT 49
#define ETHTOOL_MSG_RSS_DELETE_ACT 50
#define ETHTOOL_MSG_RSS_CREATE_ACT_REPLY 51
#endif

// --- netdev generic netlink family (KERNEL_API.md section 1) ---

// Family, dev-get and its attributes: 6.3.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
#define NETDEV_FAMILY_NAME "netdev"
#define NETDEV_FAMILY_VERSION 1
#define NETDEV_CMD_DEV_GET 1
#define NETDEV_A_DEV_IFINDEX 1
#define NETDEV_A_DEV_XDP_FEATURES 3
#endif

// queue-get and the queue attribute set: 6.8.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define NETDEV_CMD_QUEUE_GET 10
#define NETDEV_A_QUEUE_ID 1
#define NETDEV_A_QUEUE_IFINDEX 2
#define NETDEV_A_QUEUE_TYPE 3
#define NETDEV_A_QUEUE_NAPI_ID 4
#define NETDEV_QUEUE_TYPE_RX 0
#define NETDEV_QUEUE_TYPE_TX 1
#endif

// bind-rx and the queue's dmabuf attribute: 6.12.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 12, 0)
#define NETDEV_CMD_BIND_RX 13
#define NETDEV_A_QUEUE_DMABUF 5
#define NETDEV_A_DMABUF_IFINDEX 1
#define NETDEV_A_DMABUF_QUEUES 2
#define NETDEV_A_DMABUF_FD 3
#define NETDEV_A_DMABUF_ID 4
#endif

// Queue io-uring and xsk nests: 6.15.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 15, 0)
#define NETDEV_A_QUEUE_IO_URING 6
#define NETDEV_A_QUEUE_XSK 7
#endif

// bind-tx: 6.16 (not 6.15).
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 16, 0)
#define NETDEV_CMD_BIND_TX 15
#endif

// The values this project relies on, checked against whichever header won.
static_assert(ETHTOOL_MSG_FEATURES_GET == 11, "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_RINGS_GET == 15, "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_CHANNELS_GET == 17, "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_FEATURES_GET_REPLY == 11, "KERNEL_API.md");
static_assert(ETHTOOL_MSG_RINGS_GET_REPLY == 16, "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_CHANNELS_GET_REPLY == 18, "KERNEL_API.md");
static_assert(ETHTOOL_A_HEADER_DEV_INDEX == 1 &&
                  ETHTOOL_A_HEADER_DEV_NAME == 2 && ETHTOOL_A_HEADER_FLAGS == 3,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_FLAG_COMPACT_BITSETS == 1, "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_RINGS_TCP_DATA_SPLIT == 11, "KERNEL_API.md");
static_assert(ETHTOOL_A_RINGS_HDS_THRESH == 17 &&
                  ETHTOOL_A_RINGS_HDS_THRESH_MAX == 18,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_CHANNELS_COMBINED_COUNT == 9, "KERNEL_API.md");
static_assert(ETHTOOL_A_FEATURES_HW == 2 && ETHTOOL_A_FEATURES_ACTIVE == 4,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_BITSET_NOMASK == 1 && ETHTOOL_A_BITSET_BITS == 3 &&
                  ETHTOOL_A_BITSET_VALUE == 4,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_BITSET_BITS_BIT == 1 &&
                  ETHTOOL_A_BITSET_BIT_INDEX == 1 &&
                  ETHTOOL_A_BITSET_BIT_NAME == 2 &&
                  ETHTOOL_A_BITSET_BIT_VALUE == 3,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_FEATURES_SET == 12 && ETHTOOL_MSG_RINGS_SET == 16 &&
                  ETHTOOL_MSG_CHANNELS_SET == 18,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_FEATURES_SET_REPLY == 12, "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_FEATURES_WANTED == 3, "KERNEL_API.md section 3");
static_assert(ETHTOOL_FLAG_OMIT_REPLY == 2, "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_CHANNELS_RX_COUNT == 6 &&
                  ETHTOOL_A_CHANNELS_TX_COUNT == 7 &&
                  ETHTOOL_A_CHANNELS_OTHER_COUNT == 8,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_RSS_GET == 38 && ETHTOOL_MSG_RSS_GET_REPLY == 38,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_MSG_RSS_SET == 48 && ETHTOOL_MSG_RSS_CREATE_ACT == 49 &&
                  ETHTOOL_MSG_RSS_DELETE_ACT == 50 &&
                  ETHTOOL_MSG_RSS_CREATE_ACT_REPLY == 51,
              "KERNEL_API.md section 3");
static_assert(ETHTOOL_A_RSS_HEADER == 1 && ETHTOOL_A_RSS_CONTEXT == 2 &&
                  ETHTOOL_A_RSS_HFUNC == 3 && ETHTOOL_A_RSS_INDIR == 4 &&
                  ETHTOOL_A_RSS_HKEY == 5,
              "KERNEL_API.md section 3");
static_assert(NETDEV_CMD_BIND_TX == 15, "KERNEL_API.md section 1");
static_assert(NETDEV_A_DMABUF_IFINDEX == 1 && NETDEV_A_DMABUF_QUEUES == 2 &&
                  NETDEV_A_DMABUF_FD == 3 && NETDEV_A_DMABUF_ID == 4,
              "KERNEL_API.md section 1");
static_assert(NETDEV_CMD_DEV_GET == 1 && NETDEV_CMD_QUEUE_GET == 10 &&
                  NETDEV_CMD_BIND_RX == 13,
              "KERNEL_API.md section 1");
static_assert(NETDEV_A_QUEUE_ID == 1 && NETDEV_A_QUEUE_IFINDEX == 2 &&
                  NETDEV_A_QUEUE_TYPE == 3 && NETDEV_A_QUEUE_NAPI_ID == 4 &&
                  NETDEV_A_QUEUE_DMABUF == 5 && NETDEV_A_QUEUE_IO_URING == 6 &&
                  NETDEV_A_QUEUE_XSK == 7,
              "KERNEL_API.md section 1");
static_assert(NETLINK_CAP_ACK == 10 && NETLINK_EXT_ACK == 11,
              "KERNEL_API.md section 1");
static_assert(NLMSGERR_ATTR_MSG == 1 && NLMSGERR_ATTR_OFFS == 2 &&
                  NLMSGERR_ATTR_MISS_TYPE == 5,
              "KERNEL_API.md section 1");
static_assert(CTRL_CMD_GETFAMILY == 3 && CTRL_ATTR_OPS == 6 &&
                  CTRL_ATTR_OP_ID == 1 && CTRL_ATTR_OP_FLAGS == 2,
              "KERNEL_API.md section 1");

// --- netdev napi-get, qstats-get, bind-rx/bind-tx attributes ---
// (include/uapi/linux/netdev.h, generated from netdev.yaml)

// napi-get and its attributes: 6.8.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define NETDEV_CMD_NAPI_GET 11
#define NETDEV_A_NAPI_IFINDEX 1
#define NETDEV_A_NAPI_ID 2
#define NETDEV_A_NAPI_IRQ 3
#define NETDEV_A_NAPI_PID 4
#endif

// qstats-get with the base counters: 6.9.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
#define NETDEV_CMD_QSTATS_GET 12
#define NETDEV_A_QSTATS_IFINDEX 1
#define NETDEV_A_QSTATS_QUEUE_TYPE 2
#define NETDEV_A_QSTATS_QUEUE_ID 3
#define NETDEV_A_QSTATS_SCOPE 4
#define NETDEV_A_QSTATS_RX_PACKETS 8
#define NETDEV_A_QSTATS_RX_BYTES 9
#define NETDEV_A_QSTATS_TX_PACKETS 10
#define NETDEV_A_QSTATS_TX_BYTES 11
#define NETDEV_QSTATS_SCOPE_QUEUE 1
#endif

// Drop and stop/wake counters, all added in the 6.10 cycle.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 10, 0)
#define NETDEV_A_QSTATS_RX_ALLOC_FAIL 12
#define NETDEV_A_QSTATS_RX_HW_DROPS 13
#define NETDEV_A_QSTATS_RX_HW_DROP_OVERRUNS 14
#define NETDEV_A_QSTATS_RX_HW_DROP_RATELIMITS 23
#define NETDEV_A_QSTATS_TX_HW_DROPS 24
#define NETDEV_A_QSTATS_TX_HW_DROP_ERRORS 25
#define NETDEV_A_QSTATS_TX_HW_DROP_RATELIMITS 32
#define NETDEV_A_QSTATS_TX_STOP 33
#define NETDEV_A_QSTATS_TX_WAKE 34
#endif

// page-pool-get and its attributes: 6.8; the pool's dmabuf binding: 6.12.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define NETDEV_CMD_PAGE_POOL_GET 5
#define NETDEV_A_PAGE_POOL_ID 1
#define NETDEV_A_PAGE_POOL_IFINDEX 2
#define NETDEV_A_PAGE_POOL_NAPI_ID 3
#define NETDEV_A_PAGE_POOL_INFLIGHT 4
#define NETDEV_A_PAGE_POOL_INFLIGHT_MEM 5
#define NETDEV_A_PAGE_POOL_DETACH_TIME 6
#endif
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 12, 0)
#define NETDEV_A_PAGE_POOL_DMABUF 7
#endif

// (bind-rx's dmabuf attributes and bind-tx are defined above, with bind-rx.)

// ethtool_rxfh.input_xfrm "keep it" value (byte 17, rsvd8[0] before): 6.8.
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define RXH_XFRM_NO_CHANGE 0xff
#endif

static_assert(NETDEV_CMD_NAPI_GET == 11 && NETDEV_CMD_QSTATS_GET == 12 &&
                  NETDEV_CMD_BIND_TX == 15,
              "KERNEL_API.md section 1");
static_assert(NETDEV_CMD_PAGE_POOL_GET == 5 && NETDEV_A_PAGE_POOL_ID == 1 &&
                  NETDEV_A_PAGE_POOL_IFINDEX == 2 &&
                  NETDEV_A_PAGE_POOL_NAPI_ID == 3 &&
                  NETDEV_A_PAGE_POOL_INFLIGHT == 4 &&
                  NETDEV_A_PAGE_POOL_INFLIGHT_MEM == 5 &&
                  NETDEV_A_PAGE_POOL_DETACH_TIME == 6 &&
                  NETDEV_A_PAGE_POOL_DMABUF == 7,
              "KERNEL_API.md section 1");
static_assert(NETDEV_A_NAPI_IFINDEX == 1 && NETDEV_A_NAPI_ID == 2 &&
                  NETDEV_A_NAPI_IRQ == 3 && NETDEV_A_NAPI_PID == 4,
              "KERNEL_API.md section 1");
static_assert(NETDEV_A_QSTATS_IFINDEX == 1 && NETDEV_A_QSTATS_SCOPE == 4 &&
                  NETDEV_A_QSTATS_RX_PACKETS == 8 &&
                  NETDEV_A_QSTATS_TX_BYTES == 11 &&
                  NETDEV_A_QSTATS_TX_WAKE == 34,
              "KERNEL_API.md section 1");
