"""diffref: gimp-diffusion's Python reference, one package shared by the
converter, the golden-data writer, training, evaluation and the benches.

    adm_unet        ADMUNet with guided-diffusion's state_dict layout; model
                    configs and their safetensors metadata
    classifier      EncoderUNet (guided-diffusion's noisy-image classifier),
                    its metadata, and torch autograd of log p(y|x) wrt x
    diffusion       float64 schedules, respacing, DDIM/DDPM samplers,
                    classifier-free guidance (what the engine implements)
    likelihood      the variational bound in bits/dim (calc_bpd_loop
                    semantics; what engine/likelihood.c implements)
    rng             the engine's Philox4x32-10 + Box-Muller PRNG in numpy
    safetensors_io  numpy safetensors reader/writer
    training        torch forward process and hybrid loss for training

Scripts in tools/ import it directly; scripts one folder down (tools/train,
tools/eval) and outside tools/ put tools/ on sys.path first (one line).
"""
