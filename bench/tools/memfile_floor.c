/* The floor of a memory-file payload on this machine: what creating, filling,
 * sealing, mapping, reading and freeing a fresh memfd costs per MiB, beside a
 * socket write+read of the same MiB, all on one core. Build and run:
 *   gcc -O2 -o /tmp/memfile_floor bench/tools/memfile_floor.c && /tmp/memfile_floor
 * (README, "Memory-file payloads (step 9)"). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  size_t len=1<<20; int n=2000; char*buf=malloc(len); memset(buf,7,len);
  volatile unsigned long sum=0;
  // 1. memfd: create, pwrite, seal, map read-only, read every byte, unmap, close (one process)
  double t0=now();
  for(int i=0;i<n;i++){
    int fd=memfd_create("x",MFD_CLOEXEC|MFD_ALLOW_SEALING); ftruncate(fd,len);
    pwrite(fd,buf,len,0); fcntl(fd,F_ADD_SEALS,F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL);
    unsigned long*p=mmap(0,len,PROT_READ,MAP_SHARED,fd,0);
    for(size_t j=0;j<len/8;j++) sum+=p[j];
    munmap(p,len); close(fd);
  }
  double t1=now();
  printf("memfd create+pwrite+seal+map+read+free: %.0f us/MiB, %.2f GiB/s (one core, all steps)\n",(t1-t0)/n*1e6, n/(t1-t0)/1024);
  // 1b. only create+pwrite+free
  t0=now();
  for(int i=0;i<n;i++){int fd=memfd_create("x",MFD_CLOEXEC|MFD_ALLOW_SEALING); ftruncate(fd,len); pwrite(fd,buf,len,0); close(fd);}
  t1=now(); printf("memfd create+pwrite+free: %.0f us/MiB\n",(t1-t0)/n*1e6);
  // 1c. map+read of a resident file
  int fd=memfd_create("x",MFD_CLOEXEC); ftruncate(fd,len); pwrite(fd,buf,len,0);
  t0=now();
  for(int i=0;i<n;i++){unsigned long*p=mmap(0,len,PROT_READ,MAP_SHARED,fd,0); for(size_t j=0;j<len/8;j++) sum+=p[j]; munmap(p,len);}
  t1=now(); printf("map+read resident 1 MiB: %.0f us\n",(t1-t0)/n*1e6);
  t0=now();
  for(int i=0;i<n;i++){unsigned long*p=(unsigned long*)buf; for(size_t j=0;j<len/8;j++) sum+=p[j];}
  t1=now(); printf("read 1 MiB from heap: %.0f us\n",(t1-t0)/n*1e6);
  // 2. socket copy: write 1 MiB into socketpair and read it (same process, chunks of 256K)
  int sv[2]; socketpair(AF_UNIX,SOCK_STREAM,0,sv); int sz=4<<20; setsockopt(sv[0],SOL_SOCKET,SO_SNDBUF,&sz,4); setsockopt(sv[1],SOL_SOCKET,SO_RCVBUF,&sz,4);
  char*rb=malloc(len);
  t0=now();
  for(int i=0;i<n;i++){ size_t off=0; while(off<len){ size_t c=len-off>65536?65536:len-off; ssize_t w=write(sv[0],buf+off,c); ssize_t r=0; while(r<w){ssize_t k=read(sv[1],rb,w-r); r+=k;} off+=w;} }
  t1=now(); printf("socket write+read 1 MiB (64K pieces, one core): %.0f us/MiB, %.2f GiB/s\n",(t1-t0)/n*1e6,n/(t1-t0)/1024);
  return (int)(sum&1);
}
