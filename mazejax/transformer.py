"""Policies over the walk so far: the interface every sampler and trainer uses, the tabular policy
as one implementation and a causal transformer (docs/model.md §4.6) as another.

A *sequence policy* is target-blind: its input is the walk's edge-states ``s_0 = s0 -> f, ...,
s_t`` and its output the logits [D] over the move slots of ``s_t`` (``-inf`` on invalid slots).
It is a static, hashable object with three methods, each pure in ``params`` (a PyTree):

* ``init_cache(maze)``: the per-walk decoding cache before the first token;
* ``step(params, maze, cache, state, time) -> (logits [D], cache)``: read ``s_t`` (``time = t``)
  and return the logits of the next move (incremental decoding);
* ``sequence_logits(params, maze, states) -> logits [M, D]``: the logits after every prefix of a
  recorded walk ``states`` [M] (``-1`` after its end) in one pass (teacher forcing).

:class:`TabularPolicy` (params: logits [S, D]) ignores the history; :class:`TransformerPolicy`
reads it.

**Why flax linen.** ``init`` returns the parameters as a plain PyTree and ``apply`` is a pure
function of them, so a whole training run is a pure function of ``(key, hparams, params)`` that
``jax.vmap`` batches over seeds and hyperparameters with no object state to split and merge
(flax nnx modules are mutable objects that every transformation would have to split and merge).

**The transformer.** Token ``s`` (pad id ``S`` for empty cache slots) is embedded; ``layers``
pre-norm blocks of causal sliding-window attention (each token sees itself and the
``context - 1`` tokens before it) and an MLP follow; positions are ``"none"``, ``"relative"``
(a learned bias per layer, head and distance, added to the attention scores) or
``"sinusoidal"`` (added to the embeddings). The readout of state ``s`` is

    logits[j] = direct[s, j] + LayerNorm(h) . U[succ(s, j)],

with ``direct`` a table [S, D] initialised to given tabular logits and ``U`` the successor
tokens' output embeddings [S + 1, width], initialised to zero: at step 0 the logits equal the
tabular policy's exactly, whatever attention does, and the network's share grows from there.
Decoding keeps, per layer, a ring cache of the last ``context`` keys and values with the time of
each slot (write, then read), so a move costs O(context * width) however long the walk.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from mazejax import validate
from mazejax.maze import Maze
from mazejax.policy import masked_log_softmax

#: Position encodings of :class:`TransformerPolicy`.
POSITIONS = ("none", "relative", "sinusoidal")


def _rows(maze: Maze, states: jax.Array):
    """Successors and validity of the rows of ``states`` (any shape, ``-1`` read as state 0)."""
    s = jnp.maximum(states, 0)
    return jnp.asarray(maze.successors)[s], jnp.asarray(maze.valid)[s]


def _masked(valid: jax.Array, logits: jax.Array) -> jax.Array:
    return jnp.where(valid, logits, -jnp.inf)


@dataclasses.dataclass(frozen=True)
class TabularPolicy:
    """The tabular (bigram) policy as a sequence policy: ``params`` are logits [S, D]."""

    def init_cache(self, maze: Maze):
        return ()

    def step(self, params, maze: Maze, cache, state, time):
        return _masked(jnp.asarray(maze.valid)[state], params[state]), cache

    def sequence_logits(self, params, maze: Maze, states):
        _, valid = _rows(maze, states)
        return _masked(valid, params[jnp.maximum(states, 0)])


def _sinusoid(time: jax.Array, width: int) -> jax.Array:
    """Sinusoidal encodings [..., width] of integer times."""
    half = width // 2
    freq = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / max(half, 1))
    angle = time[..., None].astype(jnp.float32) * freq
    pad = jnp.zeros(time.shape + (width - 2 * half,))
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle), pad], -1).astype(jnp.float32)


def _row_init(key, shape, dtype=jnp.float32):
    """Flax's embedding init (normal, variance 1 / width), row ``i`` drawn from ``fold_in(key, i)``:
    a state's embedding does not depend on how many states the table has, so a maze padded to a
    larger capacity (a sweep's grid) starts from the same network as the unpadded maze."""
    row = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=-1, out_axis=-2)
    return jax.vmap(lambda i: row(jax.random.fold_in(key, i), (1,) + tuple(shape[1:]), dtype)[0])(jnp.arange(shape[0]))


class _Block(nn.Module):
    """One pre-norm block: sliding-window causal self-attention, then an MLP."""

    heads: int
    width: int

    def setup(self):
        self.norm_attention = nn.LayerNorm(dtype=jnp.float32)
        self.qkv = nn.DenseGeneral((3, self.heads, self.width // self.heads), dtype=jnp.float32)
        self.out = nn.DenseGeneral(self.width, axis=(-2, -1), dtype=jnp.float32)
        self.norm_mlp = nn.LayerNorm(dtype=jnp.float32)
        self.hidden = nn.Dense(4 * self.width, dtype=jnp.float32)
        self.down = nn.Dense(self.width, dtype=jnp.float32)

    def project(self, x):
        """Queries, keys and values [..., heads, width // heads] of tokens ``x`` [..., width]."""
        qkv = self.qkv(self.norm_attention(x))
        return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]

    def finish(self, x, attended):
        """``x`` plus the projection of the heads' outputs ``attended`` [..., H, d], then the MLP."""
        x = x + self.out(attended)
        return x + self.down(nn.gelu(self.hidden(self.norm_mlp(x))))


def _attend(spec: str, q, keys, values, allowed, bias):
    """Softmax attention: scores ``einsum(spec)`` of ``q`` and ``keys`` (scaled) plus ``bias``, masked
    by ``allowed`` (broadcast to the scores), applied to ``values`` by the reversed spec."""
    inputs, scores_spec = spec.split("->")
    q_spec, k_spec = inputs.split(",")
    scores = jnp.einsum(spec, q, keys) / math.sqrt(q.shape[-1]) + bias
    attention = jax.nn.softmax(jnp.where(allowed, scores, -jnp.inf), axis=-1)
    return jnp.einsum(f"{scores_spec},{k_spec}->{q_spec}", attention, values)


class TransformerPolicy(nn.Module):
    """A causal transformer over the walk's edge-states (module docstring); a sequence policy.

    Attributes:
      states: ``S``, the maze's ``capacity.states``; out_degree: ``D``, its ``capacity.out_degree``.
      layers: transformer blocks (>= 1); heads: attention heads (divides ``width``);
      width: model width; context: tokens each token attends to (itself included);
      positions: one of :data:`POSITIONS`.

    Build with :func:`transformer_policy` (validated); initialise with :func:`init_transformer`.
    """

    states: int
    out_degree: int
    layers: int = 1
    heads: int = 2
    width: int = 32
    context: int = 32
    positions: str = "relative"

    def setup(self):
        self.embed = nn.Embed(self.states + 1, self.width, dtype=jnp.float32, embedding_init=_row_init)
        self.blocks = [_Block(self.heads, self.width) for _ in range(self.layers)]
        self.norm = nn.LayerNorm(dtype=jnp.float32)
        self.direct = self.param("direct", nn.initializers.zeros, (self.states, self.out_degree), jnp.float32)
        self.successor_embedding = self.param("successor_embedding", nn.initializers.zeros,
                                              (self.states + 1, self.width), jnp.float32)
        if self.positions == "relative":
            self.distance_bias = self.param("distance_bias", nn.initializers.zeros,
                                            (self.layers, self.heads, self.context), jnp.float32)

    def _input(self, tokens, time):
        x = self.embed(jnp.where(tokens >= 0, tokens, self.states))
        return x + _sinusoid(time, self.width) if self.positions == "sinusoidal" else x

    def _bias(self, layer, distance):
        """Attention bias [..., H, N] for token distances ``distance`` [..., N] in [0, context)."""
        if self.positions != "relative":
            return jnp.zeros(distance.shape[:-1] + (self.heads, distance.shape[-1]), jnp.float32)
        return jnp.moveaxis(self.distance_bias[layer][:, distance], 0, -2)

    def _readout(self, h, states, successors, valid):
        """Logits [..., D] of the states ``states`` [...] from hidden vectors ``h`` [..., width]."""
        direct = self.direct[jnp.maximum(states, 0)]
        network = jnp.einsum("...w,...dw->...d", self.norm(h), self.successor_embedding[successors])
        return _masked(valid, direct + network)

    def teacher_forced(self, states, successors, valid):
        """Teacher forcing: logits [M, D] after every prefix of ``states`` [M] (``-1`` at the end).

        Blocked sliding-window attention: the sequence is cut in blocks of ``context`` tokens and
        each block's queries read the keys of their own and the previous block (reshapes only,
        no gathers, so the backward pass has no scatters).
        """
        M, C = states.shape[0], self.context
        blocks = -(-M // C)
        tokens = jnp.full(blocks * C, -1, jnp.int32).at[:M].set(states)
        x = self._input(tokens, jnp.arange(blocks * C))
        i, j = jnp.arange(C)[:, None], jnp.arange(2 * C)[None, :]
        distance = i + C - j  # [C, 2C]: query i of block b reads key j of blocks (b - 1, b)
        key_pos = jnp.arange(blocks)[:, None, None] * C - C + j  # [blocks, 1, 2C]
        key_real = tokens[jnp.maximum(key_pos, 0)] >= 0
        # a token always reads itself (padding after the walk's end too: no empty softmax row)
        allowed = (((distance >= 0) & (distance < C) & (key_pos >= 0) & key_real) | (distance == 0))[:, :, None, :]

        def paired(z):  # [blocks * C, H, d] -> [blocks, 2C, H, d]: the previous block, then this one
            z = z.reshape((blocks, C) + z.shape[1:])
            return jnp.concatenate([jnp.concatenate([jnp.zeros_like(z[:1]), z[:-1]]), z], axis=1)

        for layer, block in enumerate(self.blocks):
            q, k, v = block.project(x)
            bias = self._bias(layer, jnp.clip(distance, 0, C - 1))  # [C, H, 2C]
            attended = _attend("bihd,bjhd->bihj", q.reshape((blocks, C) + q.shape[1:]), paired(k), paired(v),
                               allowed, bias)
            x = block.finish(x, attended.reshape(q.shape))
        return self._readout(x[:M], states, successors, valid)

    def decode(self, cache, state, time, successors, valid):
        """One token: write ``state`` at ``time`` into the ring ``cache``, read it; (logits [D], cache)."""
        keys, values, times = cache
        time = jnp.asarray(time, jnp.int32)
        slot = time % self.context
        times = times.at[slot].set(time)
        x = self._input(state, time)
        allowed = times >= 0
        distance = jnp.clip(time - times, 0, self.context - 1)
        new_keys, new_values = [], []
        for layer, block in enumerate(self.blocks):
            q, k, v = block.project(x)
            layer_keys, layer_values = keys[layer].at[slot].set(k), values[layer].at[slot].set(v)
            new_keys.append(layer_keys)
            new_values.append(layer_values)
            attended = _attend("hd,nhd->hn", q, layer_keys, layer_values, allowed, self._bias(layer, distance))
            x = block.finish(x, attended)
        return self._readout(x, state, successors, valid), (jnp.stack(new_keys), jnp.stack(new_values), times)

    # -- the sequence-policy interface (pure functions of params) --------------------------

    @nn.nowrap
    def init_cache(self, maze: Maze):
        shape = (self.layers, self.context, self.heads, self.width // self.heads)
        return jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32), jnp.full(self.context, -1, jnp.int32)

    @nn.nowrap
    def step(self, params, maze: Maze, cache, state, time):
        successors, valid = _rows(maze, state)
        return self.apply(params, cache, state, time, successors, valid, method=TransformerPolicy.decode)

    @nn.nowrap
    def sequence_logits(self, params, maze: Maze, states):
        successors, valid = _rows(maze, states)
        return self.apply(params, states, successors, valid, method=TransformerPolicy.teacher_forced)


def transformer_policy(maze: Maze, *, layers: int = 1, heads: int = 2, width: int = 32, context: int = 32,
                       positions: str = "relative") -> TransformerPolicy:
    """A validated :class:`TransformerPolicy` sized for ``maze`` (sizes checked before any compilation)."""
    layers = validate.positive_int("layers", layers)
    heads = validate.positive_int("heads", heads)
    width = validate.positive_int("width", width)
    context = validate.positive_int("context", context)
    positions = validate.choice("positions", positions, POSITIONS)
    if width % heads:
        raise ValueError(f"width must be a multiple of heads = {heads}, got {width}")
    return TransformerPolicy(maze.capacity.states, maze.capacity.out_degree, layers, heads, width, context, positions)


def init_transformer(policy: TransformerPolicy, key: jax.Array, maze: Maze, logits: jax.Array | None = None):
    """Parameters of ``policy`` that reproduce the tabular ``logits`` [S, D] exactly (default: the
    base model, all valid logits 0): random network weights, ``direct = logits``, ``U = 0``."""
    from mazejax.train.base import initial_logits

    logits = initial_logits(maze, logits).astype(jnp.float32)
    states = jnp.zeros(2, jnp.int32)
    successors, valid = _rows(maze, states)
    params = policy.init(key, states, successors, valid, method=TransformerPolicy.teacher_forced)
    return {"params": {**params["params"], "direct": logits}}


def move_log_probabilities(policy, params, maze: Maze, states: jax.Array) -> jax.Array:
    """``log pi(s_{t+1} | s_0..s_t)`` [M - 1] of a recorded walk ``states`` [M] (``-1`` after its
    end; 0 for the moves past it), by one teacher-forced pass of ``policy``."""
    logits = policy.sequence_logits(params, maze, states)
    successors, valid = _rows(maze, states)
    nxt = states[1:]
    chosen = (successors[:-1] == nxt[:, None]) & valid[:-1] & (nxt >= 0)[:, None]
    logp = masked_log_softmax(valid[:-1], logits[:-1])
    return jnp.sum(jnp.where(chosen, logp, 0.0), axis=-1)


__all__ = [
    "POSITIONS",
    "TabularPolicy",
    "TransformerPolicy",
    "init_transformer",
    "move_log_probabilities",
    "transformer_policy",
]
