// Run-time CPU dispatch for hot loops: one clone per x86-64 level, chosen through an ifunc.
#ifndef TRIBUTARY_CLONES_H
#define TRIBUTARY_CLONES_H
#if defined(__x86_64__) && defined(__linux__)
#define TK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TK_CLONES
#endif
#endif
