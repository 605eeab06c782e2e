/* Guest entry point. The VMM enters every vCPU here (the first byte of the
 * image) in 64-bit ring 3 with RDI = boot info GPA, RSI = vCPU index and
 * RSP = top of this vCPU's stack, 16-byte aligned. */
    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    xorl %ebp, %ebp         /* end of the frame-pointer chain for debuggers */
    /* Known x87/SSE control state (round to nearest, all exceptions masked)
     * instead of whatever the VMM left: both are unprivileged. */
    fninit
    pushq $0x1f80
    ldmxcsr (%rsp)
    addq $8, %rsp
    /* RSP is 16-byte aligned here, so after `call` pushes the return address
     * mvg_entry sees the SysV layout. RDI and RSI are its two arguments. */
    call mvg_entry
    /* mvg_entry never returns; if it ever did, spin rather than run off the
     * end of the function into whatever follows. */
1:  pause
    jmp 1b
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
